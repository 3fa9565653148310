"""The router's memory of final answers about the old cluster, and the steps it may serve.

From `routing:lookup` on (lookup, draining, drained) no router creates a run on the old
cluster, so an ID found there absent, or closed and not handed off, stays so: the next call for
it can go to the new cluster without describing it again. A success stays a success, so a task
that succeeded on old is refused from memory. The safety argument, with what else could create
a run on old, is in app/platform/router.py.

Entries live for one *generation*: a stretch of consecutive versions of one migration (same old
and new cluster), each in a step the cache serves. Any other view change (an abort, finish, a
jump over versions this router did not see) starts a new generation, and answers a call learnt
under an older generation are dropped, not stored.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum

from app.platform.phases import MigrationState, Phase, Step


class OldAnswer(StrEnum):
    """What a look-up found on the old cluster, when it is final."""

    # Absent, or closed without success (failed, cancelled, terminated, timed out), or an
    # entity's completed run: new work goes to the new cluster.
    GONE = "gone"
    # A run closed as completed: a task is not run again; an entity goes to the new cluster.
    SUCCEEDED = "succeeded"


@dataclass(frozen=True, slots=True)
class Entry:
    answer: OldAnswer
    # The succeeded run, for the error that refuses the task again.
    run_id: str = ""


GONE = Entry(OldAnswer.GONE)


def serves(view: MigrationState) -> bool:
    """Whether the cache may answer for calls routed under `view`: only where no router
    creates a run on the old cluster and the previous step did not either."""
    if view.new is None:
        return False
    return (view.phase is Phase.ROUTING and view.step is Step.LOOKUP) or view.phase in (
        Phase.DRAINING,
        Phase.DRAINED,
    )


class LookupCache:
    """A bounded LRU of final look-up answers by workflow ID, for one generation at a time.

    `size` 0 turns it off. Used from the router's event loop only (no locking).
    """

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError(f"cache size {size}: must be 0 (off) or more")
        self.size = size
        self.generation = 0
        self._entries: OrderedDict[str, Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def follow(self, before: MigrationState, after: MigrationState) -> None:
        """The router's view moved from `before` to `after`: keep the entries only when both
        are served, of the same migration, and `after` is the very next version."""
        if (
            serves(before)
            and serves(after)
            and (before.old, before.new) == (after.old, after.new)
            and after.version == before.version + 1
        ):
            return
        self.generation += 1
        self._entries.clear()

    def generation_for(self, view: MigrationState) -> int | None:
        """The generation a call routed under `view` reads and writes, or None (no cache)."""
        return self.generation if self.size and serves(view) else None

    def get(self, generation: int | None, wf_id: str) -> Entry | None:
        if generation is None or generation != self.generation:
            return None
        entry = self._entries.get(wf_id)
        if entry is not None:
            self._entries.move_to_end(wf_id)
        return entry

    def put(self, generation: int | None, wf_id: str, entry: Entry) -> None:
        if generation is None or generation != self.generation:
            return
        self._entries[wf_id] = entry
        self._entries.move_to_end(wf_id)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

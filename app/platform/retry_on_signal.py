"""retry_on_signal: many event sources converge on one running workflow per entity.

Each event carries an ID. The workflow runs its unit of work over the events it holds; if more
arrived during the work, it runs again, otherwise it completes. A signal that lands in the
same workflow task as the completion makes the server reject that completion, so the SDK
replays with the signal and the loop sees it: no event is processed zero times. Events are
de-duplicated by ID within a run and across continue-as-new, so none is processed twice.
Before the history grows large, the run continues-as-new carrying its pending events.

Entities opt in to handoff (app/platform/handoff.py): asked during a cluster migration, a run
finishes its current batch and continues on the new cluster with its state, its pending events
and the IDs it has seen, instead of waiting to drain.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from temporalio import workflow

from app.platform.handoff import Handoff
from app.platform.handoff_models import HANDED_OFF

EVENT_SIGNAL = "event"
# Continue-as-new well before the 51,200-event history limit; tests lower it.
DEFAULT_HISTORY_LIMIT = 10_000
# Event IDs remembered across continue-as-new to drop late duplicates.
REMEMBERED_IDS = 2_000
# Continued runs take their carried events as pending; before this patch they were dropped as
# already seen, and the run waited for events forever.
CARRY_PENDING_PATCH = "retry-on-signal-carry-pending"


@dataclass
class EntityEvent:
    """One event for an entity; event_id is the dedupe key."""

    event_id: str
    kind: str = "event"
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass
class EntityInput:
    """Input of an entity workflow; pending and seen carry state across continue-as-new."""

    entity_key: str
    pending: list[EntityEvent] = field(default_factory=list)
    seen_ids: list[str] = field(default_factory=list)
    runs: int = 0
    processed: int = 0
    history_limit: int = DEFAULT_HISTORY_LIMIT
    state: dict[str, Any] = field(default_factory=dict)


@dataclass
class EntityResult:
    entity_key: str
    processed: int
    runs: int
    state: dict[str, Any]
    # "handed off" when the run continued on another cluster; empty when it completed here.
    reason: str = ""


class RetryOnSignal(Handoff):
    """Base for entity workflows. Subclasses decorate the class and `run`, and implement
    `process(events)`, usually one activity call over the batch.

        @DOMAIN.workflow
        class Thing(RetryOnSignal):
            @workflow.run
            async def run(self, input: EntityInput) -> EntityResult:
                return await self.run_entity(input)

            async def process(self, events: list[EntityEvent]) -> None: ...
    """

    def __init__(self) -> None:
        self._pending: list[EntityEvent] = []
        self._seen: dict[str, None] = {}
        self.state: dict[str, Any] = {}

    @workflow.signal(name=EVENT_SIGNAL)
    def on_event(self, event: EntityEvent) -> None:
        if event.event_id in self._seen:
            return
        self._seen[event.event_id] = None
        self._pending.append(event)

    @workflow.query(name="pending")
    def pending_count(self) -> int:
        return len(self._pending)

    async def process(self, events: list[EntityEvent]) -> None:
        raise NotImplementedError

    async def run_entity(self, input: EntityInput) -> EntityResult:
        self.state = dict(input.state)
        if input.pending and workflow.patched(CARRY_PENDING_PATCH):
            self._resume(input)
        else:
            # A first run carries nothing. A run continued before the patch replays the old
            # way, which dropped carried events (their IDs are in seen_ids).
            for event_id in input.seen_ids:
                self._seen[event_id] = None
            for event in input.pending:
                self.on_event(event)
        processed = input.processed
        while True:
            await workflow.wait_condition(lambda: bool(self._pending) or self.handoff_requested)
            if self.handoff_requested and self._pending:
                # A safe point: the last batch is done, the next not begun.
                if await self._hand_off(input, processed):
                    return EntityResult(
                        input.entity_key, processed, input.runs + 1, self.state, HANDED_OFF
                    )
                continue
            if not self._pending:
                # Asked to hand off with nothing to carry: done here.
                return EntityResult(input.entity_key, processed, input.runs + 1, self.state)
            batch, self._pending = self._pending, []
            await self.process(batch)
            processed += len(batch)
            if not self._pending:
                return EntityResult(input.entity_key, processed, input.runs + 1, self.state)
            if self.handoff_requested:
                continue
            if self._history_too_long(input.history_limit):
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    EntityInput(
                        entity_key=input.entity_key,
                        pending=self._pending,
                        seen_ids=list(self._seen)[-REMEMBERED_IDS:],
                        runs=input.runs + 1,
                        processed=processed,
                        history_limit=input.history_limit,
                        state=self.state,
                    )
                )

    async def _hand_off(self, input: EntityInput, processed: int) -> bool:
        """Carry what a continue-as-new would to the other cluster; events arriving from now on
        are forwarded into the snapshot."""
        continuation = EntityInput(
            entity_key=input.entity_key,
            pending=self._pending,
            seen_ids=list(self._seen)[-REMEMBERED_IDS:],
            runs=input.runs + 1,
            processed=processed,
            history_limit=input.history_limit,
            state=self.state,
        )
        carried, self._pending = self._pending, []
        if await self.hand_off(asdict(continuation), self._take_late):
            return True
        # Refused: the carried events are still this run's to process.
        self._pending = [*carried, *self._pending]
        return False

    def _take_late(self) -> list[dict[str, Any]]:
        late, self._pending = self._pending, []
        return [asdict(e) for e in late]

    def _resume(self, input: EntityInput) -> None:
        """Take over what the previous run carried: its pending events, still to process, and
        the IDs it saw. Signals that reached this run before `run` began were queued with an
        empty seen-set; drop those an earlier run already processed."""
        carried = {e.event_id for e in input.pending}
        processed = set(input.seen_ids) - carried
        early = [
            e for e in self._pending if e.event_id not in processed and e.event_id not in carried
        ]
        self._pending = [*input.pending, *early]
        self._seen = dict.fromkeys([*input.seen_ids, *carried, *(e.event_id for e in early)])

    @staticmethod
    def _history_too_long(limit: int) -> bool:
        info = workflow.info()
        return info.get_current_history_length() >= limit or info.is_continue_as_new_suggested()

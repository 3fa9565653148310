"""The migration rehearsal's ledger: what was sent, what the clusters recorded, and the verdict.

Pure bookkeeping, no Temporal: the rehearsal fills it from the router's decisions and from the
servers' own records (visibility, histories), and `check` says what broke the promises of a
drain-based migration:

- **Tasks** (a workflow ID started once, with USE_EXISTING): exactly one run across both
  clusters, and it completed. A run on each cluster is a violation even if both completed.
- **Entities** (signal-with-start, ALLOW_DUPLICATE): an entity may close when idle and start
  again, on either cluster, so it may have several runs; each must have closed as completed
  (a run closed "handed off" on the old cluster is completed by its continuation on the new
  one, which is its next run), and none may be open at the end. Every event ID sent to it is
  processed by exactly one run: once, never twice, never zero times.
- **Never two open runs** of one ID across the clusters, in any sample taken at a phase step
  (each sample holds the IDs confirmed open on each cluster at one moment).
- **Schedules**: every scheduled time across both clusters once, with no gap other than the
  interval between the first and the last.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum


class Kind(StrEnum):
    TASK = "task"
    ENTITY = "entity"


class Problem(StrEnum):
    TWO_OPEN = "two open runs"
    TASK_RUNS = "task not completed on exactly one cluster"
    ENTITY_RUN = "entity run not completed"
    LOST_EVENT = "event lost"
    DUPLICATE_EVENT = "event processed twice"
    PERIOD_TWICE = "schedule period ran twice"
    PERIOD_SKIPPED = "schedule period skipped"
    CALL_FAILED = "call failed"


@dataclass(frozen=True)
class Run:
    """One run of an ID as a cluster recorded it; `status` is Temporal's name (COMPLETED ...)."""

    cluster: str
    run_id: str
    status: str
    handed_off: bool = False


@dataclass(frozen=True)
class Sample:
    """IDs open on each cluster at one moment of the walk (`stage`)."""

    stage: str
    open: Mapping[str, frozenset[str]]


@dataclass(frozen=True)
class Violation:
    problem: Problem
    detail: str

    def __str__(self) -> str:
        return f"{self.problem}: {self.detail}"


@dataclass
class Ledger:
    """Everything the rehearsal sent and everything the clusters answered."""

    # workflow ID -> kind, and the clusters the router chose for it (in call order).
    started: dict[str, Kind] = field(default_factory=dict)
    placed: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    # entity workflow ID -> event IDs sent to it.
    sent: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    # IDs and event IDs whose call raised: the caller knows, so they may be missing (not
    # twice, and a task that did start must still complete once).
    failed: set[str] = field(default_factory=set)
    samples: list[Sample] = field(default_factory=list)
    # Filled at the end, from the servers.
    runs: dict[str, list[Run]] = field(default_factory=dict)
    processed: dict[str, Counter[str]] = field(default_factory=dict)
    schedule_times: list[tuple[datetime, str]] = field(default_factory=list)
    schedule_every: timedelta | None = None

    def start(self, wf_id: str, kind: Kind) -> None:
        self.started.setdefault(wf_id, kind)

    def place(self, wf_id: str, cluster: str) -> None:
        self.placed[wf_id][cluster] += 1

    def send(self, wf_id: str, event_id: str) -> None:
        self.start(wf_id, Kind.ENTITY)
        self.sent[wf_id].append(event_id)

    def ids(self, kind: Kind) -> list[str]:
        return [i for i, k in self.started.items() if k is kind]

    @property
    def events(self) -> int:
        return sum(len(v) for v in self.sent.values())

    def check(self) -> list[Violation]:
        return [
            *two_open(self.samples),
            *tasks(self.ids(Kind.TASK), self.runs, self.failed),
            *entities(self.ids(Kind.ENTITY), self.runs),
            *exactly_once(self.sent, self.processed, self.failed),
            *schedule_periods(self.schedule_times, self.schedule_every),
        ]


def two_open(samples: Iterable[Sample]) -> list[Violation]:
    out = []
    for s in samples:
        seen: dict[str, list[str]] = defaultdict(list)
        for cluster, ids in s.open.items():
            for wf_id in ids:
                seen[wf_id].append(cluster)
        out += [
            Violation(Problem.TWO_OPEN, f"{wf_id} open on {' and '.join(sorted(cs))} at {s.stage}")
            for wf_id, cs in sorted(seen.items())
            if len(cs) > 1
        ]
    return out


def _where(runs: list[Run]) -> str:
    return ", ".join(f"{r.status.lower()} on {r.cluster}" for r in runs) or "no run anywhere"


def tasks(
    ids: Iterable[str], runs: Mapping[str, list[Run]], failed: Collection[str] = ()
) -> list[Violation]:
    out = []
    for wf_id in ids:
        found = runs.get(wf_id, [])
        if not found and wf_id in failed:
            continue
        if len(found) != 1 or found[0].status != "COMPLETED":
            out.append(Violation(Problem.TASK_RUNS, f"{wf_id}: {_where(found)}"))
    return out


def entities(ids: Iterable[str], runs: Mapping[str, list[Run]]) -> list[Violation]:
    out = []
    for wf_id in ids:
        found = runs.get(wf_id, [])
        bad = [r for r in found if r.status != "COMPLETED"]
        if not found or bad:
            out.append(Violation(Problem.ENTITY_RUN, f"{wf_id}: {_where(bad or found)}"))
        for r in found:
            if r.handed_off and not any(o.cluster != r.cluster for o in found):
                out.append(
                    Violation(
                        Problem.ENTITY_RUN,
                        f"{wf_id}: handed off from {r.cluster} but no run continued elsewhere",
                    )
                )
    return out


def exactly_once(
    sent: Mapping[str, list[str]],
    processed: Mapping[str, Counter[str]],
    failed: Collection[str] = (),
) -> list[Violation]:
    out = []
    for wf_id, events in sent.items():
        book = processed.get(wf_id, Counter())
        lost = sorted(set(events) - set(book) - set(failed))
        twice = sorted(e for e, n in book.items() if n > 1)
        if lost:
            out.append(Violation(Problem.LOST_EVENT, f"{wf_id}: {len(lost)} e.g. {lost[:3]}"))
        if twice:
            out.append(
                Violation(Problem.DUPLICATE_EVENT, f"{wf_id}: {len(twice)} e.g. {twice[:3]}")
            )
    return out


def schedule_periods(
    times: Iterable[tuple[datetime, str]], every: timedelta | None
) -> list[Violation]:
    """Each scheduled time once across both clusters, consecutive times one interval apart."""
    ordered = sorted(times)
    if every is None or not ordered:
        return []
    out = []
    count = Counter(t for t, _ in ordered)
    for t, n in sorted(count.items()):
        if n > 1:
            owners = sorted(c for s, c in ordered if s == t)
            out.append(Violation(Problem.PERIOD_TWICE, f"{t:%H:%M:%S} ran on {owners}"))
    stamps = sorted(count)
    for a, b in zip(stamps, stamps[1:], strict=False):
        if b - a != every:
            missing = int((b - a) / every) - 1
            out.append(
                Violation(
                    Problem.PERIOD_SKIPPED,
                    f"{missing or 'a'} period(s) between {a:%H:%M:%S} and {b:%H:%M:%S}",
                )
            )
    return out

"""Schedules across a cluster migration: copied paused, then moved at one boundary second.

Schedules live inside one cluster and start their workflows there, outside the router (a
scheduled run's ID carries its scheduled time, so it never collides with a routed ID). They
move in two steps:

- **Copy, paused** (`copy_paused`), when `haul migrate route` begins: the first transition that
  proves the new cluster has the namespace, search attributes and pollers a schedule's action
  needs. A copy made at `dual` could be refused there (missing attributes) and gains nothing,
  because a paused copy is inert; edits made on the old cluster meanwhile are carried at the
  move, which re-reads the source.
- **Move** (`move`), once `routing:lookup` is in effect (the end of `route`; `drain` repeats it,
  idempotently): new work goes to the new cluster from then on, and the old cluster cannot drain
  while one of its schedules keeps starting runs.

No period runs twice and none is skipped, by construction rather than by timing. The server
computes action times in whole seconds, takes those up to `spec.end_at` (inclusive), and from
`spec.start_at` takes those after the second before it. The move picks a boundary second E a
few seconds ahead, sets the source's `end_at = E`, then copies the source's current schedule
to the target with `start_at = E + 1s`, unpaused: every time belongs to exactly one side,
whichever scheduler wakes first. Once E has passed and the source lists no time up to E, it is
paused with a note. A source whose update landed after E (a slow server) had taken every time
up to that update, so the target starts the second after it instead; a target whose unpause
landed after its start skips times before its update, so those are backfilled (start..update),
which the target's spec still bounds.

The period in flight at the boundary finishes on the old cluster, which drains it. The catchup
window is unchanged: each side catches up only its own times. The overlap policy holds per
cluster: the first run on the target does not see a run still open on the source. A schedule
its owner paused stays paused on both (the copy's note keeps the owner's), and one already
active on both clusters is left alone rather than overwritten.

A move cut off half-way (an RPC that timed out on a busy server, a killed CLI) is resumed by
running it again, never restarted: the source's note records its boundary and the owner's own
end, so the next `move` keeps that boundary, unpauses the target if it is still paused, and
pauses the source once the boundary has passed. Picking a new boundary instead would hand the
source the times between the two. Each schedule RPC but the backfill is retried on transient
errors within the move's timeout; the backfill is not (a repeat would run its times twice), so
a resumed move backfills only when the target lists no action in the range.

`abort` reverses it: with no move made yet the paused copies are deleted (`discard_copies`);
after one, the same move runs the other way.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from temporalio.client import (
    Client,
    Schedule,
    ScheduleBackfill,
    ScheduleDescription,
    ScheduleHandle,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

log = logging.getLogger("haul.migrate.schedules")
T = TypeVar("T")

# Notes haul writes start with this, so it never mistakes an owner's pause for its own.
MARK = "haul migrate"
DEFAULT_LEAD = timedelta(seconds=5)
_SECOND = timedelta(seconds=1)
_TICK = timedelta(milliseconds=1)


@dataclass(frozen=True)
class ScheduleMove:
    """What happened to one schedule: `outcome` is copied, updated, moved, already, skipped,
    pending or discarded."""

    schedule_id: str
    outcome: str
    detail: str = ""
    boundary: datetime | None = None


def pick_boundary(
    now: datetime, upcoming: Sequence[datetime], lead: timedelta = DEFAULT_LEAD
) -> datetime:
    """The first whole second at least `lead` after `now` that is no upcoming action time.

    The server computes action times in whole seconds; the source keeps times up to this
    boundary (spec.end_at is inclusive), the target starts one second later (it takes times
    from one second before spec.start_at on), so each time has exactly one owner.
    """
    at = now + lead
    boundary = at.replace(microsecond=0) + (_SECOND if at.microsecond else timedelta(0))
    taken = {t.replace(microsecond=0) for t in upcoming}
    while boundary in taken:
        boundary += _SECOND
    return boundary


def _ours(note: str | None) -> bool:
    return bool(note and note.startswith(MARK))


def _same(a: datetime | None, b: datetime) -> bool:
    return a is not None and abs(a - b) < _TICK


def _stamp(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds")


async def schedule_ids(client: Client) -> list[str]:
    """Every schedule in the client's namespace (visibility: a new one shows up shortly)."""
    return sorted([s.id async for s in await client.list_schedules()])


# Answers a busy server gives to a schedule RPC that a repeat may well get through: a deadline,
# an overloaded or restarting frontend, the scheduler's own workflow task failing for a moment.
_TRANSIENT = {
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.RESOURCE_EXHAUSTED,
    RPCStatusCode.ABORTED,
}


def _transient(err: RPCError) -> bool:
    return err.status in _TRANSIENT or "Workflow Task in failed state" in err.message


async def _retrying(call: Callable[[], Awaitable[T]], what: str, timeout: float = 60.0) -> T:
    """An idempotent schedule RPC, repeated on transient errors until `timeout` has passed."""
    deadline = time.monotonic() + timeout
    pause = 0.2
    while True:
        try:
            return await call()
        except RPCError as err:
            if not _transient(err) or time.monotonic() + pause > deadline:
                raise
            log.warning("%s: %s; retrying", what, err.message)
        await asyncio.sleep(pause)
        pause = min(pause * 2, 3.0)


async def _describe(handle: ScheduleHandle) -> ScheduleDescription | None:
    async def once() -> ScheduleDescription | None:
        try:
            return await handle.describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return None
            raise

    return await _retrying(once, f"describe schedule {handle.id}")


async def _replace(handle: ScheduleHandle, schedule: Schedule) -> None:
    async def updater(_: ScheduleUpdateInput) -> ScheduleUpdate:
        return ScheduleUpdate(schedule=schedule)

    await _retrying(lambda: handle.update(updater), f"update schedule {handle.id}")


async def _until(
    handle: ScheduleHandle,
    done: Callable[[ScheduleDescription], bool],
    timeout: float,
    what: str,
) -> ScheduleDescription:
    """Describe until `done`: updates and pauses reach the scheduler asynchronously."""
    deadline = time.monotonic() + timeout
    while True:
        desc = await _describe(handle)
        if desc is None:
            raise LookupError(f"schedule {handle.id}: deleted while {what} was awaited")
        if done(desc):
            return desc
        if time.monotonic() > deadline:
            raise TimeoutError(f"schedule {handle.id}: {what} not seen within {timeout:.0f}s")
        await asyncio.sleep(0.2)


def _paused_copy(desc: ScheduleDescription, src_name: str) -> Schedule:
    state = desc.schedule.state
    owner = "" if not state.paused or _ours(state.note) else f"; paused by its owner: {state.note}"
    return dataclasses.replace(
        desc.schedule,
        state=dataclasses.replace(
            state,
            paused=True,
            note=f"{MARK}: copy from {src_name}, paused until the move{owner}",
            # limited_actions may not be set on create; the move carries what is left.
            limited_actions=False,
            remaining_actions=0,
        ),
    )


async def copy_paused(src: Client, dst: Client, *, src_name: str) -> list[ScheduleMove]:
    """Create (or refresh) a paused copy on `dst` of every schedule on `src`."""
    moves = []
    for sid in await schedule_ids(src):
        desc = await _describe(src.get_schedule_handle(sid))
        if desc is None:
            continue
        handle = dst.get_schedule_handle(sid)
        there = await _describe(handle)
        copy = _paused_copy(desc, src_name)
        if there is None:
            await dst.create_schedule(
                sid, copy, search_attributes=desc.typed_search_attributes or None
            )
            moves.append(ScheduleMove(sid, "copied", "paused"))
        elif there.schedule.state.paused and _ours(there.schedule.state.note):
            await _replace(handle, copy)
            moves.append(ScheduleMove(sid, "updated", "paused copy refreshed"))
        elif not there.schedule.state.paused and not desc.schedule.state.paused:
            moves.append(ScheduleMove(sid, "skipped", "active on both clusters; pause one by hand"))
        else:
            moves.append(ScheduleMove(sid, "skipped", "exists there, not a haul copy"))
    return moves


async def move(
    src: Client,
    dst: Client,
    *,
    src_name: str,
    dst_name: str,
    lead: timedelta = DEFAULT_LEAD,
    timeout: float = 60.0,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> list[ScheduleMove]:
    """Make every schedule of `src` active on `dst` and paused on `src`, at one boundary each.

    Idempotent: a schedule already paused by haul on `src` and active on `dst` is left alone.
    """
    await copy_paused(src, dst, src_name=src_name)
    # Each waits for its own boundary to pass: together, a move takes about one lead.
    return list(
        await asyncio.gather(
            *(
                _move_one(src, dst, sid, src_name, dst_name, lead, timeout, now)
                for sid in await schedule_ids(src)
            )
        )
    )


def _ending_note(boundary: datetime, dst_name: str, own_end: datetime | None) -> str:
    own = _stamp(own_end) if own_end is not None else "none"
    return f"{MARK}: ends at {_stamp(boundary)}, moving to {dst_name}; own end {own}"


def _own_end(note: str) -> datetime | None:
    """The owner's `end_at` an interrupted move recorded in the source's note."""
    own = note.rpartition("; own end ")[2]
    return None if own == "none" else datetime.fromisoformat(own)


def _begun(desc: ScheduleDescription, dst_name: str) -> bool:
    """Did an earlier move to `dst_name` already give the source its boundary?"""
    note = desc.schedule.state.note or ""
    return (
        note.startswith(f"{MARK}: ends at ")
        and f"moving to {dst_name}; own end " in note
        and desc.schedule.spec.end_at is not None
    )


async def _move_one(
    src: Client,
    dst: Client,
    sid: str,
    src_name: str,
    dst_name: str,
    lead: timedelta,
    timeout: float,
    now: Callable[[], datetime],
) -> ScheduleMove:
    source, target = src.get_schedule_handle(sid), dst.get_schedule_handle(sid)
    desc, there = await _describe(source), await _describe(target)
    if desc is None or there is None:
        return ScheduleMove(sid, "skipped", f"missing on {src_name if desc is None else dst_name}")
    state = desc.schedule.state
    if state.paused and not _ours(state.note):
        return ScheduleMove(sid, "skipped", f"paused by its owner on {src_name}; copy left paused")
    if state.paused and not there.schedule.state.paused:
        return ScheduleMove(sid, "already", f"active on {dst_name}")
    if state.paused:
        return ScheduleMove(sid, "skipped", f"paused by haul on both; unpause on {dst_name}")
    begun = _begun(desc, dst_name)
    taken_over = not there.schedule.state.paused
    if taken_over and not (begun and _ours(there.schedule.state.note)):
        # Someone runs it on both already; moving would overwrite theirs and run times twice.
        return ScheduleMove(sid, "skipped", f"active on {src_name} and {dst_name}; pause one")

    spec = desc.schedule.spec
    if begun:
        # An earlier move was cut off after step 1: keep its boundary, never pick a new one.
        assert spec.end_at is not None and state.note is not None
        boundary, own_end, bounded = spec.end_at, _own_end(state.note), desc
        spec = dataclasses.replace(spec, end_at=own_end)
    else:
        boundary, own_end = pick_boundary(now(), desc.info.next_action_times, lead), spec.end_at
        if own_end is not None and own_end < boundary:
            boundary = own_end
        # 1. The source keeps every time up to the boundary, and none after it.
        await _replace(
            source,
            dataclasses.replace(
                desc.schedule,
                spec=dataclasses.replace(spec, end_at=boundary),
                state=dataclasses.replace(state, note=_ending_note(boundary, dst_name, own_end)),
            ),
        )
        bounded = await _until(
            source, lambda d: _same(d.schedule.spec.end_at, boundary), timeout, "the end boundary"
        )
    owed = sum(1 for t in desc.info.next_action_times if t <= boundary)
    last = boundary
    updated = bounded.info.last_updated_at
    if updated is not None and updated >= boundary:
        # The update landed late: the source took every time up to it.
        last = updated.replace(microsecond=0)
    start = last + _SECOND
    detail = f"boundary {_stamp(boundary)}" + ("; resumed" if begun else "")
    if taken_over:
        # 2 was done by the interrupted move.
        begin = there.schedule.spec.start_at or start
        active = there
    else:
        # 2. The target takes every time after the boundary, with the source's current schedule.
        begin = spec.start_at if spec.start_at is not None and spec.start_at > start else start
        remaining = max(0, state.remaining_actions - owed) if state.limited_actions else 0
        await _replace(
            target,
            dataclasses.replace(
                desc.schedule,
                spec=dataclasses.replace(spec, start_at=begin),
                state=dataclasses.replace(
                    state,
                    paused=False,
                    note=f"{MARK}: active from {_stamp(begin)}, moved from {src_name}",
                    remaining_actions=remaining,
                ),
            ),
        )
        active = await _until(target, lambda d: not d.schedule.state.paused, timeout, "the unpause")
    unpaused = active.info.last_updated_at
    # A resumed move's backfill may have run before it was cut off: its times are then listed.
    backfilled = taken_over and any(
        unpaused is not None and begin <= a.scheduled_at <= unpaused
        for a in active.info.recent_actions
    )
    if unpaused is not None and unpaused > begin and not backfilled:
        # The target skips times before its update: take them as a backfill (not retried).
        await target.backfill(ScheduleBackfill(start_at=begin, end_at=unpaused))
        detail += f"; backfilled {_stamp(begin)}..{_stamp(unpaused)}"
    # 3. Once the source has taken its last time, pause it.
    try:
        await _until(
            source,
            lambda d: now() > boundary and not any(t <= boundary for t in d.info.next_action_times),
            timeout + max(0.0, (boundary - now()).total_seconds()),
            "the last time before the boundary",
        )
    except TimeoutError as err:
        return ScheduleMove(sid, "pending", f"{detail}; not paused yet: {err}", boundary)
    note = f"{MARK}: moved to {dst_name} at {_stamp(boundary)}"
    await _retrying(lambda: source.pause(note=note), f"pause schedule {sid}")
    return ScheduleMove(sid, "moved", detail, boundary)


async def discard_copies(client: Client) -> list[ScheduleMove]:
    """Delete the paused copies haul made on `client` that never became active (an abort
    before the move)."""
    gone = []
    for sid in await schedule_ids(client):
        handle = client.get_schedule_handle(sid)
        desc = await _describe(handle)
        if desc is None:
            continue
        state = desc.schedule.state
        if state.paused and _ours(state.note) and ": copy from " in (state.note or ""):
            await handle.delete()
            gone.append(ScheduleMove(sid, "discarded", "paused copy deleted"))
    return gone


@dataclass(frozen=True)
class ScheduleRow:
    """One schedule on one cluster, for `haul migrate status`."""

    cluster: str
    schedule_id: str
    paused: bool
    note: str
    next_time: datetime | None


async def rows(clients: dict[str, Client]) -> list[ScheduleRow]:
    out = []
    for name, client in clients.items():
        for sid in await schedule_ids(client):
            desc = await _describe(client.get_schedule_handle(sid))
            if desc is None:
                continue
            nxt = desc.info.next_action_times
            out.append(
                ScheduleRow(
                    name,
                    sid,
                    desc.schedule.state.paused,
                    desc.schedule.state.note or "",
                    nxt[0] if nxt else None,
                )
            )
    return out

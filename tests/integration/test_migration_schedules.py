"""Schedules across `haul migrate` on two dev clusters: a schedule every two seconds keeps its
periods through the walk and through an abort. The ledger is every scheduled run on both
clusters (visibility, by TemporalScheduledById): no scheduled time twice, none skipped."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError, RPCStatusCode
from typer.testing import CliRunner, Result

from app.cli.main import app
from app.domains.sample import DOMAIN
from app.domains.sample.models import GreetingInput
from app.domains.sample.workflows import GreetingWorkflow
from app.platform import migration_schedules
from app.platform.client import connect
from app.platform.migration_state import MigrationStore
from app.stack.registry import ClusterRecord, Registry
from tests.integration.migration_clusters import polled_on, wait_until

OLD, NEW = "ms-old", "ms-new"
EVERY = timedelta(seconds=2)
SCHEDULED_AT = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")


def haul(*args: str) -> str:
    result: Result = CliRunner().invoke(app, ["migrate", *args, "--cluster", OLD])
    assert result.exit_code == 0, (result.exception, result.output)
    return result.output


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def clients() -> dict[str, Client]:
    profiles = str(Registry().profile_file)
    return {n: await connect(n, config_file=profiles) for n in (OLD, NEW)}


def polled_on_new() -> bool:
    return polled_on(NEW)


@contextmanager
def scheduled(prefix: str) -> Iterator[str]:
    """A schedule on the old cluster every two seconds, starting a short sample task; it is
    deleted from both clusters afterwards."""
    sid = f"{prefix}-{uuid.uuid4().hex[:8]}"

    async def create() -> None:
        c = (await clients())[OLD]
        await c.create_schedule(
            sid,
            Schedule(
                action=ScheduleActionStartWorkflow(
                    GreetingWorkflow.run,
                    GreetingInput(name=sid),
                    id=f"{sid}-run",
                    task_queue=DOMAIN.task_queue,
                ),
                spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=EVERY)]),
                # Every period starts a run however long the last one takes, so the ledger
                # shows the schedule's periods, not how busy two cores were.
                policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.ALLOW_ALL),
            ),
        )
        while sid not in await migration_schedules.schedule_ids(c):
            await asyncio.sleep(0.2)

    async def delete() -> None:
        for c in (await clients()).values():
            if sid in await migration_schedules.schedule_ids(c):
                await c.get_schedule_handle(sid).delete()

    run(create())
    try:
        yield sid
    finally:
        run(delete())


@pytest.fixture
def schedule_id(records: dict[str, ClusterRecord]) -> Iterator[str]:
    with scheduled("tick") as sid:
        yield sid


@pytest.fixture
def other_schedule_id(records: dict[str, ClusterRecord]) -> Iterator[str]:
    with scheduled("tock") as sid:
        yield sid


def ledger(sid: str) -> dict[str, list[datetime]]:
    """Scheduled time of every run each cluster started for the schedule."""

    async def read() -> dict[str, list[datetime]]:
        out: dict[str, list[datetime]] = {}
        for name, c in (await clients()).items():
            times = []
            async for wf in c.list_workflows(f"TemporalScheduledById = '{sid}'"):
                at = wf.typed_search_attributes.get(SCHEDULED_AT)
                assert at is not None, wf.id
                times.append(at)
            out[name] = sorted(times)
        return out

    return run(read())


def taken(sid: str, cluster: str) -> int:
    return len(ledger(sid)[cluster])


def assert_every_period_once(sid: str, *, runs_on: set[str]) -> list[tuple[datetime, str]]:
    """Each scheduled time once, on one cluster, with no period missing between the first and
    the last; `runs_on` are the clusters that must have taken some."""
    seen = ledger(sid)
    times = sorted((t, name) for name, ts in seen.items() for t in ts)
    stamps = [t for t, _ in times]
    assert len(set(stamps)) == len(stamps), f"a period ran twice: {times}"
    gaps = [(a, b) for a, b in zip(stamps, stamps[1:], strict=False) if b - a != EVERY]
    assert not gaps, f"periods skipped between {gaps}; ledger {times}"
    assert {name for name, ts in seen.items() if ts} == runs_on, seen
    return times


def terminate_runs(sid: str) -> None:
    """End the runs a schedule started in a test with no worker, so later tests can drain."""

    async def go() -> None:
        for c in (await clients()).values():
            async for wf in c.list_workflows(
                f"TemporalScheduledById = '{sid}' AND ExecutionStatus = 'Running'"
            ):
                await c.get_workflow_handle(wf.id, run_id=wf.run_id).terminate("test done")

    run(go())


def paused(sid: str) -> dict[str, bool]:
    async def read() -> dict[str, bool]:
        return {
            name: (await c.get_schedule_handle(sid).describe()).schedule.state.paused
            for name, c in (await clients()).items()
        }

    return run(read())


def test_a_schedule_keeps_every_period_through_the_whole_walk(
    records: dict[str, ClusterRecord],
    store: MigrationStore,
    worker: int,
    schedule_id: str,
    other_schedule_id: str,
) -> None:
    """Two schedules, moved together (each at its own boundary)."""
    sid, other = schedule_id, other_schedule_id
    assert f"on {OLD!r}; route copies them to {NEW!r} paused" in haul("plan", "--to", NEW)
    haul("start", "--to", NEW, "--yes")
    wait_until(polled_on_new, f"the worker polling {NEW}")
    wait_until(lambda: taken(sid, OLD) >= 2, "two periods on the old cluster")
    out = haul("route", "--yes")
    for each in (sid, other):
        assert f"schedule {each}: copied" in out and f"schedule {each}: moved" in out, out
        assert paused(each) == {OLD: True, NEW: False}
    wait_until(lambda: taken(sid, NEW) >= 2, "two periods on the new cluster")
    # drain repeats the move: already done, nothing changes.
    out = haul("drain", "--yes", "--wait", "--poll", "0.5")
    assert f"schedule {sid}: already" in out, out
    haul("finish", "--yes")
    before = taken(sid, NEW)
    wait_until(lambda: taken(sid, NEW) > before, "a period after finish")
    status = haul("status")
    assert sid in status and "active" in status
    for each in (sid, other):
        times = assert_every_period_once(each, runs_on={OLD, NEW})
        # The old cluster's periods all precede the new cluster's: one boundary.
        owners = [name for _, name in times]
        assert owners == sorted(owners, key=lambda n: n == NEW), times


def test_an_abort_moves_the_schedule_back_and_keeps_every_period(
    records: dict[str, ClusterRecord], store: MigrationStore, worker: int, schedule_id: str
) -> None:
    sid = schedule_id
    haul("start", "--to", NEW, "--yes")
    wait_until(polled_on_new, f"the worker polling {NEW}")
    haul("route", "--yes")
    assert paused(sid) == {OLD: True, NEW: False}
    wait_until(lambda: taken(sid, NEW) >= 2, "two periods on the new cluster")
    out = haul("abort", "--yes")
    assert f"schedule {sid}: moved" in out, out
    assert paused(sid) == {OLD: False, NEW: True}
    before = taken(sid, OLD)
    wait_until(lambda: taken(sid, OLD) >= before + 2, "two periods back on the old cluster")
    times = assert_every_period_once(sid, runs_on={OLD, NEW})
    # old, then new, then old again: two boundaries, each crossed once.
    owners = [name for _, name in times]
    switches = sum(1 for a, b in zip(owners, owners[1:], strict=False) if a != b)
    assert switches == 2 and owners[0] == owners[-1] == OLD, times


def test_an_abort_before_the_move_deletes_the_paused_copies(
    records: dict[str, ClusterRecord], store: MigrationStore, schedule_id: str
) -> None:
    sid = schedule_id

    async def copy_then_discard() -> tuple[bool, list[str], list[str]]:
        c = await clients()
        moves = await migration_schedules.copy_paused(c[OLD], c[NEW], src_name=OLD)
        assert [(m.schedule_id, m.outcome) for m in moves] == [(sid, "copied")]
        copy = await c[NEW].get_schedule_handle(sid).describe()
        gone = await migration_schedules.discard_copies(c[NEW])
        # The old cluster's own schedule is never a copy: discarding there removes nothing.
        kept = await migration_schedules.discard_copies(c[OLD])
        return (
            copy.schedule.state.paused,
            [m.schedule_id for m in gone],
            [m.schedule_id for m in kept],
        )

    was_paused, gone, kept = run(copy_then_discard())
    assert was_paused and gone == [sid] and kept == []

    async def described() -> dict[str, bool]:
        out = {}
        for name, c in (await clients()).items():
            try:
                await c.get_schedule_handle(sid).describe()
                out[name] = True
            except RPCError as err:
                assert err.status == RPCStatusCode.NOT_FOUND, err
                out[name] = False
        return out

    assert run(described()) == {OLD: True, NEW: False}


def test_a_move_whose_updates_land_after_the_boundary_still_keeps_every_period(
    records: dict[str, ClusterRecord], store: MigrationStore, other_schedule_id: str
) -> None:
    """The race forced: a clock ten seconds slow puts the boundary in the past, so the old
    copy's end and the new copy's unpause both land after it. The old copy has taken every
    time up to its update; the new one starts the second after, and backfills what its late
    unpause skipped. (No worker: the ledger is the runs the schedules started.)"""
    sid = other_schedule_id

    def slow_clock() -> datetime:
        return datetime.now(UTC) - timedelta(seconds=10)

    async def move_late() -> list[migration_schedules.ScheduleMove]:
        c = await clients()
        return await migration_schedules.move(
            c[OLD], c[NEW], src_name=OLD, dst_name=NEW, now=slow_clock
        )

    try:
        wait_until(lambda: taken(sid, OLD) >= 2, "two periods on the old cluster")
        moves = run(move_late())
        assert [(m.schedule_id, m.outcome) for m in moves] == [(sid, "moved")], moves
        boundary = moves[0].boundary
        assert boundary is not None and boundary < datetime.now(UTC) - timedelta(seconds=3)
        assert paused(sid) == {OLD: True, NEW: False}
        wait_until(lambda: taken(sid, NEW) >= 2, "two periods on the new cluster")
        assert_every_period_once(sid, runs_on={OLD, NEW})
        # The old cluster kept running past the boundary it was given: its update was late.
        assert ledger(sid)[OLD][-1] > boundary
    finally:
        terminate_runs(sid)


def test_a_schedule_already_active_on_both_clusters_is_left_alone(
    records: dict[str, ClusterRecord], store: MigrationStore, schedule_id: str
) -> None:
    """Someone else's schedule of the same ID on the new cluster is not overwritten, and the
    old one keeps running: a move would run their times twice."""
    sid = schedule_id

    async def go() -> tuple[list[migration_schedules.ScheduleMove], ScheduleSpec, ScheduleSpec]:
        c = await clients()
        desc = await c[OLD].get_schedule_handle(sid).describe()
        await c[NEW].create_schedule(sid, desc.schedule)
        moves = await migration_schedules.move(c[OLD], c[NEW], src_name=OLD, dst_name=NEW)
        old = await c[OLD].get_schedule_handle(sid).describe()
        new = await c[NEW].get_schedule_handle(sid).describe()
        return moves, old.schedule.spec, new.schedule.spec

    try:
        moves, old, new = run(go())
        assert [(m.schedule_id, m.outcome) for m in moves] == [(sid, "skipped")], moves
        assert "pause one" in moves[0].detail
        assert paused(sid) == {OLD: False, NEW: False}
        assert old.end_at is None and new.start_at is None
    finally:
        terminate_runs(sid)


@pytest.mark.parametrize("cut", ["after-the-end", "before-the-pause"])
def test_a_move_cut_off_half_way_is_resumed_by_the_next_move(
    records: dict[str, ClusterRecord],
    store: MigrationStore,
    other_schedule_id: str,
    monkeypatch: pytest.MonkeyPatch,
    cut: str,
) -> None:
    """The race forced: the move's RPC times out (as on a busy server) once the source has its
    boundary, or once the target is active too. The next move keeps the first boundary and
    finishes: no period twice, none skipped, the source paused. A fresh boundary would leave
    the source's times between the two unowned; refusing ("active on both") would leave the
    schedule running twice."""
    sid = other_schedule_id
    timed_out = RPCError("deadline exceeded", RPCStatusCode.DEADLINE_EXCEEDED, b"")
    replace, until = migration_schedules._replace, migration_schedules._until
    calls: list[str] = []

    async def replace_then_time_out(handle, schedule):  # type: ignore[no-untyped-def]
        calls.append("replace")
        if len(calls) == 2:  # the target's unpause
            raise timed_out
        await replace(handle, schedule)

    async def until_then_time_out(handle, done, timeout, what):  # type: ignore[no-untyped-def]
        if what == "the last time before the boundary":
            raise timed_out
        return await until(handle, done, timeout, what)

    async def move() -> list[migration_schedules.ScheduleMove]:
        c = await clients()
        return await migration_schedules.move(c[OLD], c[NEW], src_name=OLD, dst_name=NEW)

    try:
        wait_until(lambda: taken(sid, OLD) >= 2, "two periods on the old cluster")
        with monkeypatch.context() as patch:
            if cut == "after-the-end":
                patch.setattr(migration_schedules, "_replace", replace_then_time_out)
            else:
                patch.setattr(migration_schedules, "_until", until_then_time_out)
            with pytest.raises(RPCError):
                run(move())
        # The operator retries a little later: the first boundary has passed meanwhile.
        time.sleep(3 * EVERY.total_seconds())
        moves = run(move())
        assert [(m.schedule_id, m.outcome) for m in moves] == [(sid, "moved")], moves
        assert "resumed" in moves[0].detail, moves
        assert paused(sid) == {OLD: True, NEW: False}
        wait_until(lambda: taken(sid, NEW) >= 2, "two periods on the new cluster")
        assert_every_period_once(sid, runs_on={OLD, NEW})
    finally:
        terminate_runs(sid)

"""`haul migrate ...`: move the app from one Temporal cluster to another by draining.

Every verb that changes the state says what it will change and asks unless `--yes`; each waits
until every live router has acknowledged the new version before it returns (or the next step
starts). The state lives in the app database of `--cluster` (or HAUL_DATABASE_URL); each
cluster is reached by the envconfig profile of its name, without TEMPORAL_* overrides.
"""

from __future__ import annotations

import asyncio
import getpass
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TypeVar

import typer
from rich.console import Console
from rich.table import Table

from app.platform import migration_walk as walk
from app.platform.migration_control import MigrationControl
from app.platform.phases import Action, MigrationState, Phase, Step

app = typer.Typer(
    help="Cluster migration: plan, start, route, status, drain, handoff, finish, abort.",
    no_args_is_help=True,
)
console = Console()
T = TypeVar("T")

CLUSTER = typer.Option(
    None, help="Local cluster whose app database holds the state (and the cluster in use)."
)
YES = typer.Option(False, "--yes", "-y", help="Do not ask before changing anything.")
TIMEOUT = typer.Option(120.0, help="Seconds to wait for every router to acknowledge a step.")
LEAD = typer.Option(
    5.0,
    "--schedule-lead",
    help="Seconds ahead of now at which schedules change cluster (their boundary).",
)


def _meaning(state: MigrationState) -> str:
    return walk.meaning(state)


@asynccontextmanager
async def _control(cluster: str | None) -> AsyncIterator[MigrationControl]:
    from temporalio.client import Client

    from app.core.database import Database
    from app.platform.client import connect
    from app.platform.discovery import discover
    from app.platform.migration_state import MigrationStore
    from app.stack import targets

    target = targets.resolve(cluster)
    home = target.cluster or target.profile
    if not home:
        raise typer.BadParameter(
            "name the cluster in use: --cluster for a local one, or TEMPORAL_PROFILE"
        )
    db = Database(target.database_url)

    async def reach(name: str) -> Client:
        return await connect(name, config_file=target.config_file, env_overrides=False)

    try:
        yield MigrationControl(MigrationStore(db), reach, discover(), home)
    finally:
        db.close()


def _run(cluster: str | None, body: Callable[[MigrationControl], Awaitable[T]]) -> T:
    async def go() -> T:
        async with _control(cluster) as ctl:
            return await body(ctl)

    return asyncio.run(go())


def _actor() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


def _say(line: str) -> None:
    console.print(line)


def _ask(yes: bool, now: MigrationState, steps: list[str], after: MigrationState) -> None:
    console.print(f"now: {now.stage} (version {now.version}): {_meaning(now)}")
    console.print(f"will change: {' -> '.join([now.stage, *steps])}")
    console.print(f"then: {_meaning(after)}")
    if not yes:
        typer.confirm("go ahead?", abort=True)


@app.command("plan")
def plan(
    to: str = typer.Option(..., "--to", help="The cluster (profile name) to migrate to."),
    cluster: str | None = CLUSTER,
) -> None:
    """Check whether a migration to --to could start and route now. Changes nothing."""
    from dataclasses import replace

    from app.platform import migration_schedules
    from app.platform.phases import TransitionRefusedError, transition

    async def body(ctl: MigrationControl) -> None:
        state = await ctl.state()
        console.print(f"now: {state.stage} (version {state.version}): {_meaning(state)}")
        try:
            dual = transition(state, Action.START, new_cluster=to)
        except TransitionRefusedError as err:
            console.print(f"[red]start refused[/red]: {err}")
            return
        console.print(f"start: {_meaning(dual)}")
        scheduled = await migration_schedules.schedule_ids(await ctl.client(state.old))
        console.print(
            f"schedules: {len(scheduled)} on {state.old!r}; route copies them to {to!r} paused, "
            "then moves them once routing:lookup is in effect"
        )
        facts = await ctl.facts(replace(dual, version=state.version), Action.ROUTE)
        try:
            transition(dual, Action.ROUTE, replace(facts, current_in_effect=True))
            console.print(f"route: ready (workers poll every task queue on {to!r})")
        except TransitionRefusedError as err:
            console.print(f"route: not yet: {err}")

    _run(cluster, body)


@app.command("start")
def start(
    to: str = typer.Option(..., "--to", help="The cluster (profile name) to migrate to."),
    cluster: str | None = CLUSTER,
    yes: bool = YES,
    timeout: float = TIMEOUT,
) -> None:
    """Begin a migration to --to: workers start polling both clusters (phase `dual`)."""

    async def body(ctl: MigrationControl) -> None:
        now, after = await ctl.preview(Action.START, new_cluster=to)
        _ask(yes, now, [after.stage], after)
        await walk.start(ctl, to, actor=_actor(), timeout=timeout, say=_say)

    _run(cluster, body)


@app.command("route")
def route(
    cluster: str | None = CLUSTER, yes: bool = YES, timeout: float = TIMEOUT, lead: float = LEAD
) -> None:
    """Send new work to the new cluster: dual -> routing guard, claim, lookup, each in effect
    before the next. Refused until workers poll every task queue there. Schedules are copied
    to the new cluster paused first, and moved there once routing:lookup is in effect."""

    async def body(ctl: MigrationControl) -> None:
        now, after = await ctl.preview(Action.ROUTE)
        steps = [after.stage] + [
            f"routing:{s}" for s in (Step.CLAIM, Step.LOOKUP) if _before(after.step, s)
        ]
        _ask(yes, now, [*steps, "schedules active on the new cluster"], after)
        await walk.route(ctl, actor=_actor(), timeout=timeout, lead=lead, say=_say)

    _run(cluster, body)


def _before(step: Step, later: Step) -> bool:
    order = [Step.GUARD, Step.CLAIM, Step.LOOKUP]
    return step in order and order.index(step) < order.index(later)


@app.command("drain")
def drain(
    cluster: str | None = CLUSTER,
    yes: bool = YES,
    wait: bool = typer.Option(False, "--wait", help="Wait until the old cluster is drained."),
    timeout: float = TIMEOUT,
    poll: float = typer.Option(5.0, help="Seconds between counts while waiting."),
    lead: float = LEAD,
) -> None:
    """Start draining the old cluster (after routing:lookup), and mark it drained once no
    workflow is open there; with --wait, wait for that. Schedules still active on the old
    cluster are moved to the new one first."""

    async def body(ctl: MigrationControl) -> None:
        state = await ctl.state()
        if state.phase is Phase.ROUTING:
            now, after = await ctl.preview(Action.DRAIN)
            _ask(yes, now, [after.stage, "drained (once nothing is open)"], after)
            await walk.begin_drain(ctl, actor=_actor(), timeout=timeout, lead=lead, say=_say)
        await walk.mark_drained(
            ctl, actor=_actor(), timeout=timeout, wait=wait, poll=poll, say=_say
        )

    _run(cluster, body)


@app.command("finish")
def finish(cluster: str | None = CLUSTER, yes: bool = YES, timeout: float = TIMEOUT) -> None:
    """End a drained migration: single on the new cluster; workers stop polling the old."""

    async def body(ctl: MigrationControl) -> None:
        now, after = await ctl.preview(Action.FINISH)
        _ask(yes, now, [f"single on {after.old}"], after)
        await walk.finish(ctl, actor=_actor(), timeout=timeout, say=_say)

    _run(cluster, body)


@app.command("abort")
def abort(
    cluster: str | None = CLUSTER, yes: bool = YES, timeout: float = TIMEOUT, lead: float = LEAD
) -> None:
    """Return new work to the old cluster from any phase before drained. After routing has
    claimed IDs for the new cluster this walks both look-up steps and leaves a migration back
    (old and new swapped) at routing:lookup: drain and finish it as usual. Schedules go back
    too: paused copies never moved are deleted, moved ones are moved back."""

    async def body(ctl: MigrationControl) -> None:
        now, after = await ctl.preview(Action.ABORT)
        steps = [after.stage]
        if after.step in (Step.BOTH_NEW, Step.BOTH_OLD):
            steps += ["routing:both_old"] if after.step is Step.BOTH_NEW else []
            steps += [f"routing:lookup back to {now.old}"]
        _ask(yes, now, steps, after)
        await walk.abort(ctl, actor=_actor(), timeout=timeout, lead=lead, say=_say)

    _run(cluster, body)


@app.command("status")
def status(
    cluster: str | None = CLUSTER,
    older_than: float = typer.Option(6.0, help="Hours after which an open run counts stuck."),
) -> None:
    """The phase and step, open workflows per type on each cluster, the drain estimate, and
    the routers that have not yet acknowledged the current version. Changes nothing."""
    from app.platform import drain as drain_monitor
    from app.platform import migration_schedules
    from app.platform.handoff_store import HandoffStore

    async def body(ctl: MigrationControl) -> None:
        state = await ctl.state()
        began = await asyncio.to_thread(ctl.store.began)
        handoffs = HandoffStore(ctl.store.db)
        head = Table("phase", "version", "old", "new", "since", "meaning", title="migration")
        head.add_row(
            state.stage,
            str(state.version),
            state.old,
            state.new or "-",
            began.get(state.stage, "-"),
            _meaning(state),
        )
        console.print(head)
        reports = {}
        for name in [c for c in (state.old, state.new) if c]:
            reports[name] = await drain_monitor.report(
                await ctl.client(name),
                entity_types=drain_monitor.entity_types(ctl.discovered),
                older_than=timedelta(hours=older_than),
                handoffs=await asyncio.to_thread(handoffs.counts, name),
            )
        opened = Table("cluster", "workflow type", "task queue", "open", "ages", title="open")
        for name, rep in reports.items():
            for g in rep.groups:
                ages = ", ".join(f"{k}: {v}" for k, v in sorted(g.ages.items()))
                opened.add_row(name, g.workflow_type, g.task_queue, str(g.count), ages)
            opened.add_row(name, "(all)", "", str(rep.open_total), "")
        console.print(opened)
        old = reports[state.old]
        estimate = old.estimate
        console.print(
            f"drain estimate for {state.old!r}: "
            + (
                str(estimate).split(".")[0]
                if estimate is not None
                else f"unknown (nothing closed in the last {old.window})"
            )
            + f"; {old.closed_in_window} closed in the last {old.window}"
        )
        for s in old.stuck:
            console.print(f"  will not drain by itself: {s.workflow_id} ({s.reason})")
        scheds = Table("cluster", "schedule", "state", "next", "note", title="schedules")
        for row in await migration_schedules.rows(
            {n: await ctl.client(n) for n in (state.old, state.new) if n}
        ):
            scheds.add_row(
                row.cluster,
                row.schedule_id,
                "paused" if row.paused else "active",
                f"{row.next_time:%H:%M:%S}" if row.next_time else "-",
                row.note,
            )
        console.print(scheds if scheds.row_count else "no schedules")
        console.print(
            f"handed off from {state.old!r}: {old.handed_off} "
            f"({old.handoffs_in_flight} not yet resumed on {state.new or '-'!r})"
        )
        behind = await asyncio.to_thread(ctl.store.behind, state.version)
        routers = Table("router", "host", "pid", "acked", "last seen", title="not yet acknowledged")
        for r in behind:
            routers.add_row(
                r.router_id, r.host, str(r.pid), str(r.acked_version), f"{r.last_seen:%H:%M:%S}"
            )
        console.print(routers if behind else "every live router acknowledged the current version")

    _run(cluster, body)


@app.command("handoff")
def handoff(
    types: list[str] = typer.Option(
        [], "--type", help="Only workflows of this type (repeatable); default: every opted-in type."
    ),
    cluster: str | None = CLUSTER,
    yes: bool = YES,
    concurrency: int = typer.Option(16, min=1, help="Requests in flight at once."),
) -> None:
    """Ask every opted-in workflow still open on the old cluster to continue on the new one
    (from draining on). Each finishes its current unit of work, continues on the new cluster
    under the same ID with its state and pending events, and completes on the old cluster as
    "handed off". Workflows of types that do not opt in are left to drain."""
    from app.platform import handoff_control as hc
    from app.platform.handoff_models import HandoffRequest

    async def body(ctl: MigrationControl) -> None:
        state = await ctl.state()
        if state.phase not in (Phase.DRAINING, Phase.DRAINED) or state.new is None:
            raise typer.BadParameter(
                f"handoff needs the draining phase (now {state.stage}): route and drain first "
                "(`haul migrate route`, `haul migrate drain`)"
            )
        opted = hc.opted_in_types(ctl.discovered)
        refused = [t for t in types if t not in opted]
        if refused:
            raise typer.BadParameter(
                f"{', '.join(refused)} does not opt in to handoff (opted in: "
                f"{', '.join(sorted(opted)) or 'none'}): let it drain, or mix "
                "app.platform.handoff.Handoff into its workflow class"
            )
        old = await ctl.client(state.old)
        runs = await hc.open_runs(old, types)
        chosen = [(i, t) for i, t in runs if t in opted]
        per_type: dict[str, int] = {}
        for _, t in runs:
            per_type[t] = per_type.get(t, 0) + 1
        table = Table("workflow type", "open", "will", title=f"open on {state.old!r}")
        for t, n in sorted(per_type.items()):
            will = f"hand off to {state.new!r}" if t in opted else "drain (does not opt in)"
            table.add_row(t, str(n), will)
        console.print(table)
        if not chosen:
            console.print("nothing to hand off")
            return
        console.print(
            f"will change: {len(chosen)} workflow(s) finish their current unit, continue on "
            f"{state.new!r} with their state and pending events, and complete on "
            f"{state.old!r} as handed off"
        )
        if not yes:
            typer.confirm("go ahead?", abort=True)
        request = HandoffRequest(state.old, state.new, _actor())
        gate = asyncio.Semaphore(concurrency)
        failures: list[str] = []

        async def ask(wf_id: str) -> None:
            async with gate:
                try:
                    await hc.request_handoff(old, wf_id, request, opted_in=opted)
                except hc.HandoffRefusedError as err:
                    failures.append(str(err))

        await asyncio.gather(*(ask(i) for i, _ in chosen))
        console.print(
            f"asked {len(chosen) - len(failures)} workflow(s) to hand off to {state.new!r}; "
            "`haul migrate status` counts them as they resume"
        )
        for f in failures:
            console.print(f"  [yellow]not handed off[/yellow]: {f}")

    _run(cluster, body)


@app.command("rehearse")
def rehearse(
    source: str = typer.Option(
        "postgres", "--from", help="Backend of the old cluster: dev, postgres or cassandra."
    ),
    target: str = typer.Option(
        "cassandra", "--to", help="Backend of the new cluster: dev, postgres or cassandra."
    ),
    shards_to: int | None = typer.Option(
        None, "--shards-to", min=1, help="History shards of the new cluster."
    ),
    abort_at: str | None = typer.Option(
        None,
        "--abort-at",
        help="Rehearse `haul migrate abort` at this stage: dual, routing:guard, routing:claim, "
        "routing:lookup (or routing) or draining; a migration back is then drained and finished.",
    ),
    seconds: float = typer.Option(5.0, "--duration", min=0.5, help="Seconds of load per phase."),
    rate: float = typer.Option(
        20.0, min=0, help="Starts plus signal-with-starts offered per second (0: unpaced)."
    ),
    entities: int = typer.Option(200, min=1, help="Entities the signal-with-starts fan in to."),
    parcel_every: float = typer.Option(5.0, min=0, help="Seconds between parcel files (0: none)."),
    old: str = typer.Option(
        "rehearse-old", "--old", help="Name of the old local cluster (started if not running)."
    ),
    new: str = typer.Option(
        "rehearse-new", "--new", help="Name of the new local cluster (started if not running)."
    ),
    keep: bool = typer.Option(
        False,
        "--keep",
        help="Leave both clusters up afterwards (else they are stopped and purged). Their "
        "migration state is reset at the start of every rehearsal.",
    ),
    timeout: float = typer.Option(180.0, help="Seconds for each wait (a step, the drain)."),
) -> None:
    """Rehearse a whole migration between two local clusters under load, then prove nothing
    was lost: every started task completed on exactly one cluster, no ID ever open on both,
    every event processed exactly once, no schedule period doubled or skipped. Starts both
    clusters and a `haul worker`, kills that worker during draining, prints a table per phase
    and exits 1 on any violation. Changes nothing outside its own two clusters."""
    from app.loadtest.rehearsal import RehearsalConfig
    from app.loadtest.rehearsal import rehearse as run_rehearsal

    cfg = RehearsalConfig(
        source=source,
        target=target,
        shards_to=shards_to,
        abort_at=abort_at,
        old_name=old,
        new_name=new,
        seconds=seconds,
        rate=rate,
        entities=entities,
        parcel_every=parcel_every,
        timeout=timeout,
        keep=keep,
    )
    try:
        # The per-phase table has eleven columns: wider than a pipe's 80.
        outcome = run_rehearsal(cfg, Console(width=max(console.width, 140)))
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    if outcome.violations:
        raise typer.Exit(1)

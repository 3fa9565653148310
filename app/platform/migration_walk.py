"""The phase walk `haul migrate` performs, as functions: the CLI verbs and the rehearsal
(`haul migrate rehearse`) call the same steps, so a rehearsal proves what operators run.

Each function announces its transitions through `MigrationControl`, waits until every live
router acknowledged each one, and moves schedules where the walk says; `say` receives one line
per thing done (the CLI prints them). Asking the operator stays with the caller.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta

from app.platform import migration_schedules
from app.platform.migration_control import MigrationControl
from app.platform.migration_schedules import ScheduleMove
from app.platform.phases import Action, MigrationState, Phase, Step

Say = Callable[[str], None]

# What each stage means for new work, for the "will change" lines.
MEANING = {
    "single": "every call goes to {old}",
    "dual": "workers poll {old} and {new}; new work still goes to {old}",
    "routing:guard": "new work still goes to {old}, under a per-ID lock that reads claims",
    "routing:claim": "new work goes to {new} (claimed under the ID lock) unless open on {old}",
    "routing:lookup": "new work goes to {new} unless its ID is open (or succeeded) on {old}",
    "routing:both_new": "aborting: look up both clusters, else start on {new}",
    "routing:both_old": "aborting: look up both clusters, else start on {old}",
    "draining": "as routing:lookup, while {old} drains",
    "drained": "{old} has no open workflow; new work goes to {new}",
}


def meaning(state: MigrationState) -> str:
    text = MEANING.get(state.stage, state.stage)
    return text.format(old=state.old, new=state.new or "-")


def _quiet(_: str) -> None:
    return None


async def step(
    ctl: MigrationControl,
    action: Action,
    *,
    actor: str,
    timeout: float,
    new_cluster: str | None = None,
    say: Say = _quiet,
) -> MigrationState:
    """Announce one transition and wait until it is in effect."""
    state = await ctl.apply(
        action, actor=actor, reason=f"haul migrate {action}", new_cluster=new_cluster
    )
    say(f"announced {state.stage} (version {state.version}): {meaning(state)}")
    await ctl.wait_in_effect(state.version, timeout)
    say(f"[green]{state.stage} in effect[/green]: every live router acknowledged it")
    return state


def report_moves(moves: list[ScheduleMove], say: Say) -> None:
    for m in moves:
        say(f"schedule {m.schedule_id}: {m.outcome}" + (f" ({m.detail})" if m.detail else ""))


async def move_schedules(
    ctl: MigrationControl, src: str, dst: str, *, lead: float, timeout: float, say: Say = _quiet
) -> None:
    """Every schedule active on `dst` and paused on `src`, each at one boundary instant."""
    say(f"moving schedules from {src!r} to {dst!r}")
    report_moves(
        await migration_schedules.move(
            await ctl.client(src),
            await ctl.client(dst),
            src_name=src,
            dst_name=dst,
            lead=timedelta(seconds=lead),
            timeout=timeout,
        ),
        say,
    )


async def start(
    ctl: MigrationControl, to: str, *, actor: str, timeout: float, say: Say = _quiet
) -> MigrationState:
    """single -> dual: workers start polling `to` too."""
    return await step(ctl, Action.START, actor=actor, timeout=timeout, new_cluster=to, say=say)


async def route(
    ctl: MigrationControl,
    *,
    actor: str,
    timeout: float,
    lead: float,
    say: Say = _quiet,
    on_step: Callable[[MigrationState], object] | None = None,
    until: Step = Step.LOOKUP,
) -> MigrationState:
    """dual -> routing guard, claim, lookup (each in effect before the next); schedules are
    copied paused first and moved once lookup is in effect. `on_step` sees each step; `until`
    stops at an earlier step (a rehearsal aborts there), before any schedule moves."""
    now = await ctl.state()
    if now.phase is Phase.DUAL:
        assert now.new is not None
        report_moves(
            await migration_schedules.copy_paused(
                await ctl.client(now.old), await ctl.client(now.new), src_name=now.old
            ),
            say,
        )
    state = await step(ctl, Action.ROUTE, actor=actor, timeout=timeout, say=say)
    if on_step is not None:
        on_step(state)
    while state.step in (Step.GUARD, Step.CLAIM) and state.step is not until:
        state = await step(ctl, Action.ROUTE, actor=actor, timeout=timeout, say=say)
        if on_step is not None:
            on_step(state)
    if state.step is not Step.LOOKUP:
        return state
    assert state.new is not None
    await move_schedules(ctl, state.old, state.new, lead=lead, timeout=timeout, say=say)
    return state


async def begin_drain(
    ctl: MigrationControl, *, actor: str, timeout: float, lead: float, say: Say = _quiet
) -> MigrationState:
    """routing:lookup -> draining, after moving any schedule still active on the old cluster.
    Already draining: nothing changes."""
    state = await ctl.state()
    if state.phase is Phase.ROUTING:
        assert state.new is not None
        await move_schedules(ctl, state.old, state.new, lead=lead, timeout=timeout, say=say)
        state = await step(ctl, Action.DRAIN, actor=actor, timeout=timeout, say=say)
    return state


async def mark_drained(
    ctl: MigrationControl,
    *,
    actor: str,
    timeout: float,
    wait: bool,
    poll: float,
    say: Say = _quiet,
    deadline: float | None = None,
) -> MigrationState:
    """draining -> drained; with `wait`, first until the old cluster has no open workflow and
    every handed-off one has been resumed on the new (for at most `deadline` seconds, when
    given): a handoff's old run closes before its continuation starts. Refused while either
    is left."""
    state = await ctl.state()
    began = time.monotonic()
    while wait:
        facts = await ctl.facts(state, Action.MARK_DRAINED)
        if not facts.open_on_old and not facts.handoffs_in_flight:
            break
        if deadline is not None and time.monotonic() - began > deadline:
            break
        if facts.open_on_old:
            say(f"{facts.open_on_old} workflow(s) still open on {state.old!r}")
        else:
            say(f"{facts.handoffs_in_flight} handoff(s) not yet resumed on {state.new!r}")
        await asyncio.sleep(poll)
    return await step(ctl, Action.MARK_DRAINED, actor=actor, timeout=timeout, say=say)


async def finish(
    ctl: MigrationControl, *, actor: str, timeout: float, say: Say = _quiet
) -> MigrationState:
    """drained -> single on the new cluster; workers stop polling the old one."""
    return await step(ctl, Action.FINISH, actor=actor, timeout=timeout, say=say)


async def abort(
    ctl: MigrationControl,
    *,
    actor: str,
    timeout: float,
    lead: float,
    say: Say = _quiet,
    on_step: Callable[[MigrationState], object] | None = None,
) -> MigrationState:
    """Back to the old cluster: straight to single (paused copies deleted), or through both
    look-up steps to a migration back at routing:lookup, with the schedules moved back."""
    now = await ctl.state()
    state = await step(ctl, Action.ABORT, actor=actor, timeout=timeout, say=say)
    if on_step is not None:
        on_step(state)
    while state.step in (Step.BOTH_NEW, Step.BOTH_OLD):
        state = await step(ctl, Action.ABORT, actor=actor, timeout=timeout, say=say)
        if on_step is not None:
            on_step(state)
    if state.phase is Phase.SINGLE:
        assert now.new is not None
        report_moves(await migration_schedules.discard_copies(await ctl.client(now.new)), say)
    else:
        assert state.new is not None
        await move_schedules(ctl, state.old, state.new, lead=lead, timeout=timeout, say=say)
    return state

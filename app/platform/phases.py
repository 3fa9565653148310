"""Cluster-migration phases and the transitions between them (pure: no I/O).

    single -> dual -> routing(guard -> claim -> lookup) -> draining -> drained -> single (new)

`abort` returns to the old cluster from any phase before `drained`. Before anything was started
on the new cluster (dual, routing:guard) it goes straight back to `single`; later it walks the
two `both` steps and then migrates back (old and new swapped), because runs are by then open on
both clusters. Why each step is safe next to its neighbours is in app/platform/router.py.

Every transition needs the current version in effect (acknowledged by every live router), so at
most two adjacent steps are ever live at once. Facts that need a live cluster are gathered by
app/platform/migration_checks.py and passed in as `Facts`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class Phase(StrEnum):
    SINGLE = "single"
    DUAL = "dual"
    ROUTING = "routing"
    DRAINING = "draining"
    DRAINED = "drained"


class Step(StrEnum):
    """How a router places a new run while `routing` (see app/platform/router.py)."""

    NONE = ""
    # Under the per-ID lock: start on the old cluster unless the ID was claimed for the new.
    GUARD = "guard"
    # Under the per-ID lock: look the ID up on the old cluster; else claim it for the new one.
    CLAIM = "claim"
    # No lock, no claim: look the ID up on the old cluster; else start on the new one.
    LOOKUP = "lookup"
    # Aborting, under the per-ID lock: look the ID up on both; else start on the new one.
    BOTH_NEW = "both_new"
    # Aborting, under the per-ID lock: look the ID up on both; else start on the old one.
    BOTH_OLD = "both_old"


class Action(StrEnum):
    START = "start"
    ROUTE = "route"
    DRAIN = "drain"
    MARK_DRAINED = "drained"
    FINISH = "finish"
    ABORT = "abort"


@dataclass(frozen=True)
class MigrationState:
    """What every router follows. With no migration, `phase` is single on `old`."""

    old: str
    new: str | None = None
    phase: Phase = Phase.SINGLE
    step: Step = Step.NONE
    version: int = 0

    @property
    def stage(self) -> str:
        """`routing:claim`, or the phase alone: the label counters and tables use."""
        return f"{self.phase}:{self.step}" if self.step else str(self.phase)


@dataclass(frozen=True)
class Facts:
    """Live-cluster facts a transition may need; see migration_checks."""

    # Every live router has acknowledged the current version.
    current_in_effect: bool = True
    # Task queues of the app with no poller on the new cluster.
    missing_task_queues: tuple[str, ...] = ()
    # Namespaces (or search attributes, as `ns:attr`) missing on the new cluster.
    missing_namespaces: tuple[str, ...] = ()
    # Open workflows on the old cluster; None when nobody counted them.
    open_on_old: int | None = None
    # Handoffs away from the old cluster whose continuation has not started yet.
    handoffs_in_flight: int = 0


class TransitionRefusedError(ValueError):
    """A transition that is not allowed now; the message says why and what to do."""


_ROUTE_NEXT = {
    Step.GUARD: Step.CLAIM,
    Step.CLAIM: Step.LOOKUP,
}


def _refuse(state: MigrationState, action: Action, why: str) -> TransitionRefusedError:
    return TransitionRefusedError(
        f"cannot {action} at {state.stage} (version {state.version}): {why}"
    )


def _start(state: MigrationState, new_cluster: str | None) -> MigrationState:
    if state.phase is not Phase.SINGLE:
        raise _refuse(state, Action.START, f"a migration to {state.new!r} is already under way")
    if not new_cluster:
        raise _refuse(state, Action.START, "name the cluster to migrate to")
    if new_cluster == state.old:
        raise _refuse(state, Action.START, f"{new_cluster!r} is already the only cluster")
    return replace(state, new=new_cluster, phase=Phase.DUAL, step=Step.NONE)


def _route(state: MigrationState, facts: Facts) -> MigrationState:
    if state.phase is Phase.DUAL:
        missing = []
        if facts.missing_task_queues:
            missing.append(
                f"no worker polls {', '.join(facts.missing_task_queues)} on {state.new!r}"
            )
        if facts.missing_namespaces:
            missing.append(f"{state.new!r} lacks {', '.join(facts.missing_namespaces)}")
        if missing:
            raise _refuse(state, Action.ROUTE, "; ".join(missing) + "; start them and retry")
        return replace(state, phase=Phase.ROUTING, step=Step.GUARD)
    if state.phase is Phase.ROUTING and state.step in _ROUTE_NEXT:
        return replace(state, step=_ROUTE_NEXT[state.step])
    if state.phase is Phase.ROUTING and state.step is Step.LOOKUP:
        raise _refuse(state, Action.ROUTE, "routing is complete; drain next")
    if state.phase is Phase.ROUTING:
        raise _refuse(state, Action.ROUTE, "an abort is under way; continue it with abort")
    raise _refuse(state, Action.ROUTE, "routing follows dual (start a migration first)")


def _abort(state: MigrationState) -> MigrationState:
    if state.phase is Phase.SINGLE:
        raise _refuse(state, Action.ABORT, "no migration is under way")
    if state.phase is Phase.DRAINED:
        raise _refuse(
            state, Action.ABORT, "the old cluster is drained; finish, then migrate back if needed"
        )
    if state.phase is Phase.DUAL or state.step is Step.GUARD:
        # Nothing has been started on the new cluster yet: every router sends work to old.
        return replace(state, new=None, phase=Phase.SINGLE, step=Step.NONE)
    if state.phase is Phase.DRAINING or state.step is Step.LOOKUP:
        return replace(state, phase=Phase.ROUTING, step=Step.BOTH_NEW)
    if state.step in (Step.CLAIM, Step.BOTH_NEW):
        return replace(state, phase=Phase.ROUTING, step=Step.BOTH_OLD)
    # BOTH_OLD in effect: no router starts on the new cluster any more; migrate back.
    assert state.new is not None
    return replace(state, old=state.new, new=state.old, phase=Phase.ROUTING, step=Step.LOOKUP)


def transition(
    state: MigrationState,
    action: Action,
    facts: Facts | None = None,
    *,
    new_cluster: str | None = None,
) -> MigrationState:
    """The state after `action`, with the version bumped; TransitionRefusedError says why not."""
    facts = facts or Facts()
    if not facts.current_in_effect:
        raise _refuse(
            state,
            action,
            "not every live router has acknowledged the current version yet; wait for it "
            "(`haul migrate status` lists the routers behind)",
        )
    if action is Action.START:
        nxt = _start(state, new_cluster)
    elif action is Action.ROUTE:
        nxt = _route(state, facts)
    elif action is Action.DRAIN:
        if not (state.phase is Phase.ROUTING and state.step is Step.LOOKUP):
            raise _refuse(state, action, "draining follows routing:lookup")
        nxt = replace(state, phase=Phase.DRAINING, step=Step.NONE)
    elif action is Action.MARK_DRAINED:
        if state.phase is not Phase.DRAINING:
            raise _refuse(state, action, "drained follows draining")
        if facts.open_on_old is None:
            raise _refuse(state, action, f"open workflows on {state.old!r} were not counted")
        if facts.open_on_old:
            raise _refuse(
                state,
                action,
                f"{facts.open_on_old} workflow(s) still open on {state.old!r}; wait or hand off",
            )
        if facts.handoffs_in_flight:
            raise _refuse(
                state,
                action,
                f"{facts.handoffs_in_flight} handed-off workflow(s) not yet resumed on "
                f"{state.new!r}; their resumers need workers polling there",
            )
        nxt = replace(state, phase=Phase.DRAINED)
    elif action is Action.FINISH:
        if state.phase is not Phase.DRAINED or state.new is None:
            raise _refuse(state, action, "finish follows drained")
        nxt = MigrationState(old=state.new)
    else:
        nxt = _abort(state)
    return replace(nxt, version=state.version + 1)

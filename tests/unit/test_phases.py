"""Migration phases: every allowed transition, and every refused one with its reason."""

from __future__ import annotations

import pytest

from app.platform.phases import (
    Action,
    Facts,
    MigrationState,
    Phase,
    Step,
    TransitionRefusedError,
    transition,
)

A, B = "pg", "scylla"


def at(phase: Phase, step: Step = Step.NONE, version: int = 7) -> MigrationState:
    return MigrationState(
        old=A, new=None if phase is Phase.SINGLE else B, phase=phase, step=step, version=version
    )


SINGLE = at(Phase.SINGLE)
DUAL = at(Phase.DUAL)
GUARD = at(Phase.ROUTING, Step.GUARD)
CLAIM = at(Phase.ROUTING, Step.CLAIM)
LOOKUP = at(Phase.ROUTING, Step.LOOKUP)
BOTH_NEW = at(Phase.ROUTING, Step.BOTH_NEW)
BOTH_OLD = at(Phase.ROUTING, Step.BOTH_OLD)
DRAINING = at(Phase.DRAINING)
DRAINED = at(Phase.DRAINED)
EVERY = [SINGLE, DUAL, GUARD, CLAIM, LOOKUP, BOTH_NEW, BOTH_OLD, DRAINING, DRAINED]

# (from, action, facts, to) for every allowed transition.
ALLOWED = [
    (DUAL, Action.ROUTE, Facts(), GUARD),
    (GUARD, Action.ROUTE, Facts(), CLAIM),
    (CLAIM, Action.ROUTE, Facts(), LOOKUP),
    (LOOKUP, Action.DRAIN, Facts(), DRAINING),
    (DRAINING, Action.MARK_DRAINED, Facts(open_on_old=0), DRAINED),
    (DRAINED, Action.FINISH, Facts(), MigrationState(old=B)),
    (DUAL, Action.ABORT, Facts(), MigrationState(old=A)),
    (GUARD, Action.ABORT, Facts(), MigrationState(old=A)),
    (CLAIM, Action.ABORT, Facts(), BOTH_OLD),
    (LOOKUP, Action.ABORT, Facts(), BOTH_NEW),
    (DRAINING, Action.ABORT, Facts(), BOTH_NEW),
    (BOTH_NEW, Action.ABORT, Facts(), BOTH_OLD),
    (
        BOTH_OLD,
        Action.ABORT,
        Facts(),
        MigrationState(old=B, new=A, phase=Phase.ROUTING, step=Step.LOOKUP),
    ),
]


@pytest.mark.parametrize(("before", "action", "facts", "after"), ALLOWED)
def test_allowed_transitions_bump_the_version(
    before: MigrationState, action: Action, facts: Facts, after: MigrationState
) -> None:
    got = transition(before, action, facts)
    assert (got.old, got.new, got.phase, got.step) == (
        after.old,
        after.new,
        after.phase,
        after.step,
    )
    assert got.version == before.version + 1


def test_start_names_the_new_cluster() -> None:
    got = transition(SINGLE, Action.START, new_cluster=B)
    assert (got.old, got.new, got.phase, got.version) == (A, B, Phase.DUAL, 8)
    assert got.stage == "dual"


def test_every_other_pair_is_refused() -> None:
    allowed = {(b.stage, a) for b, a, _, _ in ALLOWED} | {("single", Action.START)}
    for state in EVERY:
        for action in Action:
            if (state.stage, action) in allowed:
                continue
            with pytest.raises(TransitionRefusedError, match=f"cannot {action} at {state.stage}"):
                transition(state, action, Facts(open_on_old=0), new_cluster=B)


@pytest.mark.parametrize(
    ("state", "action", "reason"),
    [
        (DUAL, Action.START, "a migration to 'scylla' is already under way"),
        (LOOKUP, Action.ROUTE, "routing is complete; drain next"),
        (BOTH_NEW, Action.ROUTE, "an abort is under way; continue it with abort"),
        (SINGLE, Action.ROUTE, "routing follows dual"),
        (DUAL, Action.DRAIN, "draining follows routing:lookup"),
        (LOOKUP, Action.MARK_DRAINED, "drained follows draining"),
        (DRAINING, Action.FINISH, "finish follows drained"),
        (SINGLE, Action.ABORT, "no migration is under way"),
        (DRAINED, Action.ABORT, "the old cluster is drained"),
    ],
)
def test_refusals_say_why(state: MigrationState, action: Action, reason: str) -> None:
    with pytest.raises(TransitionRefusedError, match=reason):
        transition(state, action, Facts(open_on_old=0), new_cluster=B)


def test_start_needs_a_different_named_cluster() -> None:
    with pytest.raises(TransitionRefusedError, match="name the cluster to migrate to"):
        transition(SINGLE, Action.START)
    with pytest.raises(TransitionRefusedError, match="'pg' is already the only cluster"):
        transition(SINGLE, Action.START, new_cluster=A)


def test_no_transition_before_the_current_version_is_in_effect() -> None:
    for state, action, facts, _ in ALLOWED:
        stale = Facts(
            current_in_effect=False,
            open_on_old=facts.open_on_old,
        )
        with pytest.raises(TransitionRefusedError, match="not every live router has acknowledged"):
            transition(state, action, stale)


def test_routing_needs_pollers_and_namespaces_on_the_new_cluster() -> None:
    facts = Facts(missing_task_queues=("parcel (workflow)",), missing_namespaces=("haul:Team",))
    with pytest.raises(TransitionRefusedError) as refused:
        transition(DUAL, Action.ROUTE, facts)
    assert "no worker polls parcel (workflow) on 'scylla'" in str(refused.value)
    assert "'scylla' lacks haul:Team" in str(refused.value)
    with pytest.raises(TransitionRefusedError, match="no worker polls sample"):
        transition(DUAL, Action.ROUTE, Facts(missing_task_queues=("sample (activity)",)))


def test_drained_needs_a_count_of_zero_open_on_the_old_cluster() -> None:
    with pytest.raises(TransitionRefusedError, match="open workflows on 'pg' were not counted"):
        transition(DRAINING, Action.MARK_DRAINED, Facts())
    with pytest.raises(TransitionRefusedError, match="3 workflow\\(s\\) still open on 'pg'"):
        transition(DRAINING, Action.MARK_DRAINED, Facts(open_on_old=3))


def test_an_abort_walks_back_to_single_on_the_old_cluster() -> None:
    state = LOOKUP
    for action in (Action.ABORT, Action.ABORT, Action.ABORT, Action.DRAIN):
        state = transition(state, action)
    state = transition(state, Action.MARK_DRAINED, Facts(open_on_old=0))
    state = transition(state, Action.FINISH)
    assert (state.old, state.new, state.phase) == (A, None, Phase.SINGLE)
    assert state.version == LOOKUP.version + 6

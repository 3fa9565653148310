"""`haul migrate drain --wait`: it waits for handed-off workflows to resume, not only for the
old cluster to empty (a handoff's old run closes before its continuation starts)."""

from __future__ import annotations

from typing import Any

import pytest

from app.platform import migration_walk
from app.platform.phases import Action, Facts, MigrationState, Phase

DRAINING = MigrationState(old="a", new="b", phase=Phase.DRAINING, version=5)


class Control:
    """A migration control whose old cluster empties, then whose last handoff resumes."""

    def __init__(self, facts: list[Facts]) -> None:
        self.left = facts
        self.asked = 0

    async def state(self) -> MigrationState:
        return DRAINING

    async def facts(self, state: MigrationState, action: Action) -> Facts:
        assert action is Action.MARK_DRAINED
        self.asked += 1
        return self.left.pop(0) if len(self.left) > 1 else self.left[0]


async def test_drain_wait_holds_until_every_handoff_is_resumed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ctl = Control(
        [
            Facts(open_on_old=1, handoffs_in_flight=0),
            Facts(open_on_old=0, handoffs_in_flight=1),
            Facts(open_on_old=0, handoffs_in_flight=1),
            Facts(open_on_old=0, handoffs_in_flight=0),
        ]
    )
    stepped: list[tuple[Action, int]] = []

    async def step(ctl_: Any, action: Action, **_: Any) -> MigrationState:
        stepped.append((action, ctl.asked))
        return DRAINING

    monkeypatch.setattr(migration_walk, "step", step)
    said: list[str] = []
    await migration_walk.mark_drained(
        ctl,  # type: ignore[arg-type]
        actor="t",
        timeout=1,
        wait=True,
        poll=0,
        say=said.append,
    )
    assert stepped == [(Action.MARK_DRAINED, 4)]
    assert said == [
        "1 workflow(s) still open on 'a'",
        "1 handoff(s) not yet resumed on 'b'",
        "1 handoff(s) not yet resumed on 'b'",
    ]


async def test_drain_wait_gives_up_at_its_deadline_and_lets_the_transition_refuse(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ctl = Control([Facts(open_on_old=0, handoffs_in_flight=2)])
    stepped: list[Action] = []

    async def step(ctl_: Any, action: Action, **_: Any) -> MigrationState:
        stepped.append(action)
        return DRAINING

    monkeypatch.setattr(migration_walk, "step", step)
    await migration_walk.mark_drained(
        ctl,  # type: ignore[arg-type]
        actor="t",
        timeout=1,
        wait=True,
        poll=0.01,
        deadline=0.05,
    )
    assert stepped == [Action.MARK_DRAINED] and ctl.asked >= 2

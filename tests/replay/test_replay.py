"""Committed histories of every shipped workflow type must still replay."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from app.platform.discovery import discover, workflow_type_name
from app.platform.plugin import HaulPlugin

HISTORIES = Path(__file__).parent / "histories"


def shipped_workflows() -> list[type]:
    return [wf for q in discover().queues.values() for wf in q.workflows]


def test_every_shipped_workflow_type_has_a_history() -> None:
    have = {p.stem for p in HISTORIES.glob("*.json")}
    missing = sorted(workflow_type_name(wf) for wf in shipped_workflows())
    missing = [name for name in missing if name not in have]
    assert missing == [], (
        f"no replay history for {missing}: add a scenario in tests/replay/scenarios.py and run "
        "`python -m tests.replay.capture NAME`"
    )


@pytest.mark.parametrize("path", sorted(HISTORIES.glob("*.json")), ids=lambda p: p.stem)
async def test_history_replays(path: Path) -> None:
    data = json.loads(path.read_text())
    history = WorkflowHistory.from_json(f"replay-{path.stem}", data)
    replayer = Replayer(workflows=shipped_workflows(), plugins=[HaulPlugin()])
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name} no longer replays: {result.replay_failure}"

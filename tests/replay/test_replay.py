"""Committed histories of every shipped workflow type, every run of each, must still replay;
and they must hold the paths that could break: continue-as-new, a failed child, and both
sides of each `workflow.patched()` change."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from app.platform.discovery import discover, workflow_type_name
from app.platform.handoff import HandoffResume
from app.platform.handoff_models import HANDOFF_UPDATE, RECORD_ACTIVITY
from app.platform.plugin import HaulPlugin
from app.platform.retry_on_signal import CARRY_PENDING_PATCH

HISTORIES = Path(__file__).parent / "histories"
FILES = sorted(HISTORIES.glob("*.run*.json"))


def shipped_workflows() -> list[type]:
    """Every discovered workflow, and the platform's own the worker builder adds."""
    return [*(wf for q in discover().queues.values() for wf in q.workflows), HandoffResume]


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(f"replay-{path.stem}", json.loads(path.read_text()))


def workflow_type(history: WorkflowHistory) -> str:
    return history.events[0].workflow_execution_started_event_attributes.workflow_type.name


def event_types(history: WorkflowHistory) -> set[str]:
    return {EventType.Name(e.event_type) for e in history.events}


def continued_runs(type_name: str) -> list[WorkflowHistory]:
    """Runs of a type that a continue-as-new started, with something carried in their input."""
    runs = [load(p) for p in FILES]
    return [
        h
        for h in runs
        if workflow_type(h) == type_name
        and h.events[0].workflow_execution_started_event_attributes.continued_execution_run_id
        and json.loads(
            h.events[0].workflow_execution_started_event_attributes.input.payloads[0].data
        ).get("pending")
    ]


def has_patch_marker(history: WorkflowHistory, patch_id: str) -> bool:
    return any(
        patch_id.encode() in payload.data
        for e in history.events
        if e.HasField("marker_recorded_event_attributes")
        for payloads in e.marker_recorded_event_attributes.details.values()
        for payload in payloads.payloads
    )


def test_every_shipped_workflow_type_has_a_history() -> None:
    have = {workflow_type(load(p)) for p in FILES}
    missing = sorted(workflow_type_name(wf) for wf in shipped_workflows())
    missing = [name for name in missing if name not in have]
    assert missing == [], (
        f"no replay history for {missing}: add a scenario in tests/replay/scenarios.py and run "
        "`python -m tests.replay.capture NAME`"
    )


def test_parcel_ingest_histories_continue_as_new_and_hold_a_failed_child() -> None:
    runs = [load(p) for p in FILES if p.name.startswith("ParcelIngest.run")]
    assert len(runs) >= 2, "ParcelIngest has one run: recapture it with a continue-as-new"
    seen = set().union(*(event_types(h) for h in runs))
    assert "EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW" in seen
    assert "EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED" in seen


def test_packed_parcel_histories_hold_a_run_an_invoice_alone_and_a_continue_as_new() -> None:
    """Both shapes of ParcelIngest replay: a file started before packed runs (above) and one
    after, whose histories hold runs, an invoice failing alone, and a large invoice's child."""
    packed = [load(p) for p in FILES if p.name.startswith("ParcelIngest-packed.run")]
    assert len(packed) >= 2, "recapture ParcelIngest-packed with a continue-as-new"
    assert "EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW" in set().union(
        *(event_types(h) for h in packed))
    children = {
        e.start_child_workflow_execution_initiated_event_attributes.workflow_type.name
        for p in FILES if p.name.startswith(("ParcelIngest-", "ParcelInvoiceRun."))
        for e in load(p).events
        if e.HasField("start_child_workflow_execution_initiated_event_attributes")
    }
    assert children == {"ParcelInvoiceRun", "ParcelInvoice"}
    runs = [load(p) for p in FILES if p.name.startswith("ParcelInvoiceRun.run")]
    assert any("EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED" in event_types(h) for h in runs)


def test_both_sides_of_the_carry_pending_patch_have_a_history() -> None:
    continued = continued_runs("LedgerEntityWorkflow")
    patched = [has_patch_marker(h, CARRY_PENDING_PATCH) for h in continued]
    assert True in patched, "no continued entity run made by the patched code"
    assert False in patched, "no continued entity run made by the code before the patch"


def test_a_handed_off_entity_and_its_continuation_have_histories() -> None:
    """The handoff path (update, record activity, completion) and the run it continues as."""
    [old] = [load(p) for p in FILES if p.name.startswith("LedgerEntityWorkflow-handedoff.")]
    accepted = [
        e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
        for e in old.events
        if e.HasField("workflow_execution_update_accepted_event_attributes")
    ]
    assert accepted == [HANDOFF_UPDATE]
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in old.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert RECORD_ACTIVITY in scheduled
    assert (
        b"handed off"
        in old.events[-1].workflow_execution_completed_event_attributes.result.payloads[0].data
    )
    [resumed] = [load(p) for p in FILES if p.name.startswith("LedgerEntityWorkflow-resumed.")]
    started = resumed.events[0].workflow_execution_started_event_attributes
    assert json.loads(started.input.payloads[0].data)["pending"], "the continuation carried nothing"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
async def test_history_replays(path: Path) -> None:
    replayer = Replayer(workflows=shipped_workflows(), plugins=[HaulPlugin()])
    result = await replayer.replay_workflow(load(path), raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name} no longer replays: {result.replay_failure}"


async def test_a_new_file_an_older_worker_began_replays_on_the_old_path() -> None:
    """Rolling deploy: the starter asks for packed runs, but an older worker (which knows no
    `packed` flag) ran the splitter's first tasks one child per invoice. A newer worker must
    replay that history on the old path; without the `parcel-packed-runs` patch it would take
    the packed one and fail with a nondeterminism error."""
    history = load(HISTORIES / "ParcelIngest.run1.json")
    started = history.events[0].workflow_execution_started_event_attributes
    payload = started.input.payloads[0]
    body = json.loads(payload.data)
    assert "packed" not in body or body["packed"] is False
    body["packed"] = True
    payload.data = json.dumps(body).encode()
    replayer = Replayer(workflows=shipped_workflows(), plugins=[HaulPlugin()])
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"an older worker's run fails: {result.replay_failure}"

"""Handoff rules without servers: how late events join a snapshot, when a resumer starts the
continuation, which types opt in, what a run accepts, and `drained` while a handoff waits."""

from __future__ import annotations

import pytest

from app.platform.discovery import discover
from app.platform.handoff import Handoff
from app.platform.handoff_control import not_opted_in, opted_in_types
from app.platform.handoff_models import HandoffRequest
from app.platform.handoff_store import (
    HandoffRow,
    HandoffStatus,
    ResumeStep,
    merge_pending,
    resume_step,
)
from app.platform.phases import (
    Action,
    Facts,
    MigrationState,
    Phase,
    TransitionRefusedError,
    transition,
)


def event(event_id: str) -> dict[str, object]:
    return {"event_id": event_id, "kind": "event", "payload": {}}


def test_late_events_join_the_snapshot_once_each_in_arrival_order() -> None:
    snapshot = {"entity_key": "k", "pending": [event("a")], "seen_ids": ["a"], "runs": 1}
    merged, added = merge_pending(snapshot, [event("b"), event("a"), event("c"), event("b")])
    assert added == 2
    assert [e["event_id"] for e in merged["pending"]] == ["a", "b", "c"]
    # A retried forward (same events again) appends nothing.
    again, added = merge_pending(merged, [event("b"), event("c")])
    assert added == 0 and again["pending"] == merged["pending"]
    # The other fields ride along, and the caller's snapshot is left as it was.
    assert again["runs"] == 1 and again["seen_ids"] == ["a"]
    assert [e["event_id"] for e in snapshot["pending"]] == ["a"]


def test_a_snapshot_with_no_pending_list_takes_events() -> None:
    merged, added = merge_pending({"entity_key": "k"}, [event("x")])
    assert added == 1 and merged["pending"] == [event("x")]


def row(status: HandoffStatus, new_run_before: str | None = None) -> HandoffRow:
    return HandoffRow(
        workflow_id="ledger-entity-workflow|k",
        workflow_type="LedgerEntityWorkflow",
        task_queue="sample",
        from_cluster="pg",
        to_cluster="scylla",
        from_run_id="r-old",
        snapshot={"pending": [event("a")]},
        forwarded=0,
        status=status,
        new_run_before=new_run_before,
        resumed_run_id=None,
    )


@pytest.mark.parametrize(
    ("handoff", "latest_new_run", "step"),
    [
        # No handoff of this ID: start (or join) as usual.
        (None, "", ResumeStep.NOTHING),
        (None, "r-new", ResumeStep.NOTHING),
        # Resumed already: the continuation exists; never start it from the snapshot again.
        (row(HandoffStatus.RESUMED), "r-new", ResumeStep.NOTHING),
        (row(HandoffStatus.RESUMED), "", ResumeStep.NOTHING),
        # Waiting: this resumer starts it, whatever ran on the new cluster before.
        (row(HandoffStatus.SNAPSHOTTED), "", ResumeStep.START),
        (row(HandoffStatus.SNAPSHOTTED), "r-earlier", ResumeStep.START),
        # A resumer died after noting the new cluster's latest run. Unchanged: it died before
        # its start, so start. Changed: its start happened (maybe continued as new since).
        (row(HandoffStatus.RESUMING, ""), "", ResumeStep.START),
        (row(HandoffStatus.RESUMING, "r-earlier"), "r-earlier", ResumeStep.START),
        (row(HandoffStatus.RESUMING, ""), "r-new", ResumeStep.STARTED),
        (row(HandoffStatus.RESUMING, "r-earlier"), "r-new", ResumeStep.STARTED),
        (row(HandoffStatus.RESUMING, None), "r-new", ResumeStep.STARTED),
    ],
)
def test_a_resumer_starts_the_continuation_only_when_nobody_did(
    handoff: HandoffRow | None, latest_new_run: str, step: ResumeStep
) -> None:
    assert resume_step(handoff, latest_new_run) is step


def test_retry_on_signal_entities_opt_in_and_task_workflows_do_not() -> None:
    opted = opted_in_types(discover())
    assert {"LedgerEntityWorkflow", "UpdateRateAuditStatus"} <= opted
    assert not {"GreetingWorkflow", "ParcelIngest", "ParcelInvoice"} & opted
    message = str(not_opted_in("greeting-workflow|x", "GreetingWorkflow"))
    assert "greeting-workflow|x is a GreetingWorkflow, which does not opt in" in message
    assert "haul migrate drain --wait" in message and "Handoff" in message


def test_a_run_accepts_one_target_and_refuses_its_own_cluster() -> None:
    run = Handoff()
    with pytest.raises(ValueError, match="name the other cluster"):
        run._validate_handoff(HandoffRequest("pg", "pg"))
    with pytest.raises(ValueError, match="name the other cluster"):
        run._validate_handoff(HandoffRequest("pg", ""))
    run._validate_handoff(HandoffRequest("pg", "scylla"))
    run._handoff_request = HandoffRequest("pg", "scylla")
    assert run.handoff_requested
    # Asked again for the same target: accepted (a retried request is harmless).
    run._validate_handoff(HandoffRequest("pg", "scylla", "someone else"))
    with pytest.raises(ValueError, match="already handing off to 'scylla'"):
        run._validate_handoff(HandoffRequest("pg", "cassandra"))


def test_drained_waits_for_every_handoff_to_be_resumed() -> None:
    draining = MigrationState(old="pg", new="scylla", phase=Phase.DRAINING, version=9)
    with pytest.raises(TransitionRefusedError, match="2 handed-off workflow"):
        transition(draining, Action.MARK_DRAINED, Facts(open_on_old=0, handoffs_in_flight=2))
    # Open runs are named first: they are what the operator waits for.
    with pytest.raises(TransitionRefusedError, match="1 workflow.s. still open"):
        transition(draining, Action.MARK_DRAINED, Facts(open_on_old=1, handoffs_in_flight=2))
    drained = transition(draining, Action.MARK_DRAINED, Facts(open_on_old=0))
    assert drained.phase is Phase.DRAINED and drained.version == 10

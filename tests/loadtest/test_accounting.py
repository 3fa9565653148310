"""History tallies for the event shapes the load scenarios do not produce (no server needed):
continue-as-new, children, markers, retries, external signals, and how starts are told apart."""

from __future__ import annotations

import json

from temporalio.api.common.v1 import Payload, Payloads, WorkflowExecution
from temporalio.api.enums.v1 import ContinueAsNewInitiator, EventType
from temporalio.api.history.v1 import (
    ActivityTaskStartedEventAttributes,
    HistoryEvent,
    MarkerRecordedEventAttributes,
    WorkflowExecutionSignaledEventAttributes,
    WorkflowExecutionStartedEventAttributes,
)

from app.loadtest.accounting import (
    CHILD_EXTRA,
    VIA_SIGNAL_WITH_START,
    compare,
    problems,
    tally_history,
)
from app.loadtest.report import accounting_gates


def _started(**attrs: object) -> HistoryEvent:
    return HistoryEvent(
        event_type=EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
        workflow_execution_started_event_attributes=WorkflowExecutionStartedEventAttributes(
            **attrs  # type: ignore[arg-type]
        ),
    )


def _signaled(via: str | None = None, external: bool = False) -> HistoryEvent:
    body = {"event_id": "e", "kind": "event", "payload": {"via": via} if via else {}}
    attrs = WorkflowExecutionSignaledEventAttributes(
        signal_name="event",
        input=Payloads(
            payloads=[Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(body).encode())]
        ),
    )
    if external:
        attrs.external_workflow_execution.CopyFrom(WorkflowExecution(workflow_id="sender"))
    return HistoryEvent(
        event_type=EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
        workflow_execution_signaled_event_attributes=attrs,
    )


def _event(kind: int) -> HistoryEvent:
    return HistoryEvent(event_type=kind)  # type: ignore[arg-type]


def test_a_plain_start_and_a_signal_with_start_start() -> None:
    plain = [_started(), _event(EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED), _signaled()]
    assert tally_history(plain) == {
        "grpc_StartWorkflowExecution": 1,
        "grpc_SignalWorkflowExecution": 1,
    }
    sws = [_started(), _signaled(VIA_SIGNAL_WITH_START), _signaled(VIA_SIGNAL_WITH_START)]
    assert tally_history(sws) == {"grpc_SignalWithStartWorkflowExecution": 2}
    # A signal-with-start from code that marks nothing (the parcel pipeline's activities):
    # the signal written with the start is the call; a later unmarked signal is a plain one.
    unmarked = [_started(), _signaled(), _event(EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED),
                _signaled()]
    assert tally_history(unmarked) == {
        "grpc_SignalWithStartWorkflowExecution": 1,
        "grpc_SignalWorkflowExecution": 1,
    }


def test_continued_and_child_runs_are_billed_elsewhere() -> None:
    continued = _started(
        continued_execution_run_id="previous",
        initiator=ContinueAsNewInitiator.CONTINUE_AS_NEW_INITIATOR_WORKFLOW,
    )
    child = _started()
    child.workflow_execution_started_event_attributes.parent_workflow_execution.CopyFrom(
        WorkflowExecution(workflow_id="parent")
    )
    assert tally_history([continued]) == {}
    assert tally_history([child]) == {}
    parent = [
        _started(),
        _event(EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED),
        _event(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW),
    ]
    # A child start is billed twice: the command and its _Extra.
    assert tally_history(parent) == {
        "grpc_StartWorkflowExecution": 1,
        "command_StartChildWorkflowExecution": 1,
        CHILD_EXTRA: 1,
        "command_ContinueAsNewWorkflowExecution": 1,
    }


def test_commands_retries_markers_and_external_signals() -> None:
    def marker(task: int) -> HistoryEvent:
        return HistoryEvent(
            event_type=EventType.EVENT_TYPE_MARKER_RECORDED,
            marker_recorded_event_attributes=MarkerRecordedEventAttributes(
                marker_name="LocalActivity", workflow_task_completed_event_id=task
            ),
        )

    started_third_attempt = HistoryEvent(
        event_type=EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED,
        activity_task_started_event_attributes=ActivityTaskStartedEventAttributes(attempt=3),
    )
    events = [
        _started(),
        _event(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED),
        started_third_attempt,
        _event(EventType.EVENT_TYPE_TIMER_STARTED),
        _event(EventType.EVENT_TYPE_TIMER_STARTED),
        _event(EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES),
        _event(EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED),
        _signaled(external=True),  # billed to the sender's command, not here
        marker(4),
        marker(4),  # two markers in one workflow task: one batch
        marker(9),
    ]
    assert tally_history(events) == {
        "grpc_StartWorkflowExecution": 1,
        "command_ScheduleActivityTask": 1,
        "activity_retry": 2,
        "command_StartTimer": 2,
        "command_UpsertWorkflowSearchAttributes": 1,
        "command_SignalExternalWorkflowExecution": 1,
        "command_BatchMarkers": 2,
    }


def test_compare_flags_more_than_two_percent_and_lists_server_only_types() -> None:
    rows = {
        r.action_type: r
        for r in compare(
            server={
                "grpc_StartWorkflowExecution": 102,
                "command_StartTimer": 100,
                "grpc_RecordActivityTaskHeartbeat": 7,
                "grpc_QueryWorkflow": 5,
            },
            from_history={"grpc_StartWorkflowExecution": 100, "command_StartTimer": 103},
            from_client={"grpc_QueryWorkflow": 5},
        )
    }
    assert not rows["grpc_StartWorkflowExecution"].flagged  # 2.00% is within
    assert rows["command_StartTimer"].flagged  # 3 of 103 is 2.9%
    assert rows["grpc_RecordActivityTaskHeartbeat"].source == "server only"
    assert rows["grpc_RecordActivityTaskHeartbeat"].expected is None
    assert rows["grpc_QueryWorkflow"].source == "client"
    assert rows["grpc_QueryWorkflow"].diff_pct == 0


def test_a_type_nothing_explains_is_flagged_and_fails_its_gate() -> None:
    server = {
        "grpc_StartWorkflowExecution": 10,
        "grpc_RecordActivityTaskHeartbeat": 3,  # known: heartbeats never reach a history
        "grpc_ResetWorkflowExecution": 1,  # injected: nothing in the run explains it
    }
    history = {"grpc_StartWorkflowExecution": 10}
    rows = {r.action_type: r for r in compare(server, history, {})}
    assert not rows["grpc_RecordActivityTaskHeartbeat"].flagged
    reset = rows["grpc_ResetWorkflowExecution"]
    assert (reset.source, reset.expected, reset.flagged) == ("unexplained", None, True)
    gates = {g.name: g for g in accounting_gates(list(rows.values()), 2.0)}
    explained = gates["server-counted types explained"]
    assert not explained.passed
    assert explained.detail == "unexplained: grpc_ResetWorkflowExecution"
    assert gates["server vs histories within 2%"].passed
    (line,) = problems(rows.values())
    assert line.startswith("grpc_ResetWorkflowExecution: the server counted 1")


def test_accounting_gates_pass_when_all_is_explained_and_fail_on_a_gap() -> None:
    server = {"grpc_StartWorkflowExecution": 10, "command_ScheduleActivityTask": 13}
    history = {"grpc_StartWorkflowExecution": 10, "command_ScheduleActivityTask": 10}
    gates = accounting_gates(compare(server, history, {}), 2.0)
    assert [(g.name, g.passed, g.kind) for g in gates] == [
        ("server-counted types explained", True, "accounting"),
        ("server vs histories within 2%", False, "accounting"),
    ]
    assert accounting_gates([], 2.0) == []  # no metrics URL: nothing to judge

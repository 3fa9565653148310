"""What a handoff passes around: the request, the snapshot, forwarded events, the resume target.

Plain dataclasses, so the workflow sandbox, the activities and the CLI share them as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

HANDOFF_UPDATE = "handoff"
# The reason a handed-off run gives when it completes on the old cluster.
HANDED_OFF = "handed off"
# Memo a handing-off run sets (to the target cluster) before its snapshot, so a router that
# finds the ID closed on the old cluster reads the handoff table only for such runs.
HANDED_OFF_MEMO = "haul-handed-off-to"
# The resumer's workflow type; its ID is workflow_id(RESUME_WORKFLOW, <handed-off ID>).
RESUME_WORKFLOW = "HandoffResume"
RECORD_ACTIVITY = "haul_handoff_record"
FORWARD_ACTIVITY = "haul_handoff_forward"
RESUME_ACTIVITY = "haul_handoff_resume"


@dataclass
class HandoffRequest:
    """Asks a run to continue on `to_cluster`; `from_cluster` is where it runs now."""

    from_cluster: str
    to_cluster: str
    requested_by: str = ""


@dataclass
class HandoffAck:
    """The run that accepted a handoff request."""

    workflow_id: str
    run_id: str
    to_cluster: str


@dataclass
class HandoffSnapshot:
    """A run's continuation, written before it completes on the old cluster.

    `continuation` is the input the run continues from; its `pending` list (events with an
    `event_id`) is where events that reach the old run afterwards are appended.
    """

    workflow_id: str
    workflow_type: str
    task_queue: str
    from_run_id: str
    from_cluster: str
    to_cluster: str
    continuation: dict[str, Any] = field(default_factory=dict)


@dataclass
class HandoffForward:
    """Events that reached the old run after its snapshot."""

    workflow_id: str
    from_run_id: str
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class HandoffTarget:
    """What the resumer needs: which run to wait for, and the ID to continue."""

    workflow_id: str
    from_run_id: str
    from_cluster: str
    to_cluster: str

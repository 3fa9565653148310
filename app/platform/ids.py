"""Deterministic workflow IDs: `kebab(workflow_type)|task_identifier`.

The ID is the dedupe key: the same task identifier always maps to the same workflow, so a
duplicate start is a no-op and a failed task can be redriven under the same ID.
"""

from __future__ import annotations

import re

_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
SEPARATOR = "|"


def kebab_case(name: str) -> str:
    """`UpdateRateAuditStatus` or `update_rate_audit_status` -> `update-rate-audit-status`."""
    spaced = _BOUNDARY.sub("-", name.strip())
    return re.sub(r"[^a-z0-9]+", "-", spaced.lower()).strip("-")


def workflow_id(workflow_type: str, task_identifier: str) -> str:
    """The deterministic ID for one task of one workflow type."""
    if not task_identifier:
        raise ValueError(f"workflow {workflow_type!r} needs a non-empty task identifier")
    return f"{kebab_case(workflow_type)}{SEPARATOR}{task_identifier}"


def split_workflow_id(wf_id: str) -> tuple[str, str]:
    """Inverse of workflow_id: (kebab type, task identifier)."""
    kind, sep, ident = wf_id.partition(SEPARATOR)
    if not sep:
        raise ValueError(f"{wf_id!r} is not a haul workflow ID (expected 'type|identifier')")
    return kind, ident

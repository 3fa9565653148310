import pytest

from app.platform.ids import kebab_case, split_workflow_id, workflow_id


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("UpdateRateAuditStatus", "update-rate-audit-status"),
        ("update_rate_audit_status", "update-rate-audit-status"),
        ("ParseEDI210Invoice", "parse-edi210-invoice"),
        ("HTTPSplitter", "http-splitter"),
        ("already-kebab", "already-kebab"),
    ],
)
def test_kebab_case(name: str, expected: str) -> None:
    assert kebab_case(name) == expected


def test_workflow_id_round_trip() -> None:
    wf_id = workflow_id("ParcelSplitter", "sha256:abc|def")
    assert wf_id == "parcel-splitter|sha256:abc|def"
    assert split_workflow_id(wf_id) == ("parcel-splitter", "sha256:abc|def")


def test_empty_task_identifier_is_refused() -> None:
    with pytest.raises(ValueError, match="non-empty task identifier"):
        workflow_id("ParcelSplitter", "")
    with pytest.raises(ValueError, match="not a haul workflow ID"):
        split_workflow_id("no-separator")

"""The drain monitor's arithmetic: age buckets, the estimate, and which types are entities."""

from __future__ import annotations

from datetime import timedelta

from app.platform.discovery import discover
from app.platform.drain import DrainReport, age_bucket, entity_types


def report(open_total: int, closed: int) -> DrainReport:
    return DrainReport(
        open_total=open_total,
        groups=[],
        closed_in_window=closed,
        window=timedelta(minutes=5),
        stuck=[],
    )


def test_ages_fall_in_their_bucket() -> None:
    assert age_bucket(timedelta(seconds=59)) == "<1m"
    assert age_bucket(timedelta(minutes=1)) == "<10m"
    assert age_bucket(timedelta(minutes=59)) == "<1h"
    assert age_bucket(timedelta(hours=23)) == "<1d"
    assert age_bucket(timedelta(days=3)) == ">=1d"


def test_the_estimate_divides_what_is_open_by_the_recent_close_rate() -> None:
    assert report(100, 50).estimate == timedelta(minutes=10)
    assert report(0, 0).estimate == timedelta(0)
    assert report(3, 0).estimate is None, "no close in the window: unknown, not forever"


def test_retry_on_signal_workflows_are_the_entity_types() -> None:
    found = entity_types(discover(["app.domains.sample"]))
    assert found == {"LedgerEntityWorkflow"}

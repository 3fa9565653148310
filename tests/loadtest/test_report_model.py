"""report.json is the typed RunReport: what the runner writes is what every reader gets back,
and the report writer renders it. No Locust run needed."""

from __future__ import annotations

import json
from pathlib import Path

from app.loadtest import report
from app.loadtest.models import RunReport
from tests.loadtest.sample_report import capacity_report


def test_report_json_reads_back_as_the_same_report(tmp_path: Path) -> None:
    written = capacity_report(tmp_path, held=120.0, broke=150.0)
    path = written.write()
    back = RunReport.read(path)
    assert back == written
    assert back.settings.load.shape is not None and back.settings.load.shape.users(1) == 4
    assert back.sustained_actions_per_s() == 120.0
    # Credentials and per-process paths never reach the report.
    raw = json.loads(path.read_text())
    assert "database_url" not in raw["settings"]["load"]
    assert "blob_dir" not in raw["settings"]["load"]


def test_without_capacity_the_sustained_rate_is_the_runs_median(tmp_path: Path) -> None:
    run = capacity_report(tmp_path, held=120.0, broke=150.0).model_copy(update={"capacity": None})
    assert run.sustained_actions_per_s() == run.summary.actions_per_s_sustained == 12.0


def test_the_html_report_renders_from_the_model(tmp_path: Path) -> None:
    page = report.render_html(capacity_report(tmp_path, held=120.0, broke=150.0), history=[])
    assert page.startswith("<!doctype html>")
    assert "start_and_complete" in page and "PASS" in page

"""What keeps a parcel worker up on hostile files and honest about its own configuration: peak
RSS of the real index and normalize code stays bounded, long groups heartbeat, and a missing
setting stops the worker at start or fails the activity for good, never a retry loop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from app.core.blobstore import LocalBlobStore
from app.core.database import DatabaseNotConfiguredError
from app.core.settings import Settings, SettingsError
from app.domains.parcel import DOMAIN
from app.domains.parcel.activities import ParcelActivities
from app.domains.parcel.models import FinishInput, IndexInput, file_blob_key
from app.domains.rate_audit.activities import RateAuditActivities
from app.domains.rate_audit.models import AuditBatchInput
from app.formats.generator import Edi210Spec, EdiQuirks, write_edi210
from app.platform.client import HaulClient
from app.platform.discovery import discover
from app.platform.plugin import HaulPlugin
from app.platform.worker import WorkerContext, build_workers

LIMIT_MIB = 512
ROOT = Path(__file__).resolve().parents[3]


def test_worker_peak_rss_stays_bounded_on_hostile_files() -> None:
    """The memory benchmark's cases, each in a fresh child of a fresh parent, with a cap of
    50,000 charges per group so the tier stays quick (the 400,000-charge group runs on the
    full activities in tests/integration/parcel)."""
    done = subprocess.run(
        [sys.executable, "-m", "loadtest.bench_parcel_memory", "--case", "group-at-cap",
         "--case", "group-over-cap", "--case", "csv-endless-line"],
        capture_output=True, text=True, cwd=ROOT, timeout=600, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT), "HAUL_PARCEL_MAX_CHARGES_PER_GROUP": "50000"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    reports = {r["case"]: r for r in map(json.loads, done.stdout.strip().splitlines())}
    print(json.dumps(reports))
    assert set(reports) == {"group-at-cap", "group-over-cap", "csv-endless-line"}
    for report in reports.values():
        assert report["children_peak_rss_mib"] < LIMIT_MIB, report
        assert report["self_peak_rss_mib"] < LIMIT_MIB, report
    accepted = reports.pop("group-at-cap")
    assert accepted["charges"] == 50_000 and not accepted["failures"]
    for report in reports.values():
        assert report["invoices"] == 1 and report["charges"] == 0
        [failure] = report["failures"]
        assert "HAUL_PARCEL_MAX_" in failure
    assert "more than 50,000 L1 charges" in reports["group-over-cap"]["failures"][0]


def _acts(tmp_path: Path, **settings: str) -> ParcelActivities:
    values = {"database_url": "postgresql://unused", "blob_dir": str(tmp_path / "blobs"),
              **settings}
    return ParcelActivities(WorkerContext(Settings(**values), cast(HaulClient, None)))


def test_a_long_charge_group_heartbeats_while_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HAUL_PARCEL_MAX_CHARGES_PER_GROUP", "100000")
    path = tmp_path / "long.edi"
    write_edi210(path, Edi210Spec(invoices=1, groups_per_invoice=1, charges_per_group=60_000,
                                  discount_every=0, quirks=EdiQuirks(newline="\r\n")))
    acts = _acts(tmp_path)
    LocalBlobStore(tmp_path / "blobs").put_file(file_blob_key("h" * 64), path)
    env = ActivityEnvironment()
    beats: list[Any] = []
    env.on_heartbeat = lambda *details: beats.append(details)
    result = env.run(acts._index, IndexInput(content_hash="h" * 64, workflow_id="w"))
    assert result.charge_count == 60_000 and result.group_count == 1
    assert len(beats) >= path.stat().st_size // (1 << 20)


def test_a_bad_cap_stops_the_worker_with_the_variable_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HAUL_PARCEL_MAX_CHARGES_PER_GROUP", "0")
    with pytest.raises(SettingsError, match="HAUL_PARCEL_MAX_CHARGES_PER_GROUP"):
        _acts(tmp_path)


@pytest.mark.parametrize(("missing", "variable"), [("database_url", "HAUL_DATABASE_URL"),
                                                    ("blob_dir", "HAUL_BLOB_DIR")])
def test_the_worker_refuses_the_parcel_queue_without_its_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, missing: str, variable: str
) -> None:
    monkeypatch.delenv("HAUL_DATABASE_URL", raising=False)
    monkeypatch.delenv("HAUL_BLOB_DIR", raising=False)
    values = {"database_url": "postgresql://unused", "blob_dir": str(tmp_path), missing: ""}
    error = DatabaseNotConfiguredError if missing == "database_url" else ValueError
    with pytest.raises(error, match=f"set {variable}.*cannot serve the parcel task queue"):
        # Refused while the activities are built, before any worker would reach the server.
        client = SimpleNamespace(config=lambda: {"plugins": [HaulPlugin()]})
        build_workers(cast(Client, client), discover(["app.domains"]), Settings(**values),
                      [DOMAIN.task_queue])


def test_a_file_missing_from_the_blob_store_is_not_retried(tmp_path: Path) -> None:
    acts = _acts(tmp_path)
    with pytest.raises(ApplicationError) as err:
        ActivityEnvironment().run(acts.index_file, IndexInput(
            content_hash="0" * 64, workflow_id="w", file_name="invoices.edi"))
    assert err.value.non_retryable and err.value.type == "HaulConfigurationError"
    assert "'invoices.edi'" in err.value.message and "HAUL_BLOB_DIR" in err.value.message


def test_a_database_missing_at_run_time_is_not_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    acts = _acts(tmp_path)
    monkeypatch.delenv("HAUL_DATABASE_URL", raising=False)
    acts.ctx.settings.database_url = ""  # lost after start: the same on every attempt
    with pytest.raises(ApplicationError) as err:
        ActivityEnvironment().run(acts.finish_ingest, FinishInput(content_hash="0" * 64,
                                                                  workflow_id="w"))
    assert err.value.non_retryable and err.value.type == "HaulConfigurationError"
    assert "HAUL_DATABASE_URL" in err.value.message
    monkeypatch.delenv("HAUL_DATABASE_URL", raising=False)
    audit = RateAuditActivities(WorkerContext(Settings(database_url=""), cast(HaulClient, None)))
    with pytest.raises(ApplicationError) as err:
        ActivityEnvironment().run(audit.audit_charge_groups, AuditBatchInput(
            revision_id=1, first_sequence=1, last_sequence=1))
    assert err.value.non_retryable and err.value.type == "HaulConfigurationError"

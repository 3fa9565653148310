"""One LoadSettings across the process boundary: what the parent writes as HAUL_LT_* is what
a Locust process reads back, and a value the model refuses is a usage error on the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.loadtest.settings import LoadSettings, StepShape


def test_the_locust_process_reads_back_what_the_parent_wrote(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for key in [k for k in os.environ if k.startswith("HAUL_LT_")]:
        monkeypatch.delenv(key)
    # The process's own database and blob store are not the parent's to send.
    monkeypatch.setenv("HAUL_DATABASE_URL", "postgresql://haul:pw@db/haul")
    monkeypatch.setenv("HAUL_BLOB_DIR", "/srv/blobs")
    sent = LoadSettings(
        run_tag="lt0123456789",
        entities=7,
        burst=3,
        wait=0.25,
        parcel_invoices=5,
        parcel_groups=4,
        shape=StepShape(step_start=2, step_users=3, steps=4, step_seconds=6.5, spawn_rate=9),
        out=tmp_path,
        stop_after=30,
    )
    env = sent.env()
    assert not [v for v in env.values() if "pw@db" in v or "/srv/blobs" in v]
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert LoadSettings() == sent


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--entities", "0"], "entities: Input should be greater than or equal to 1"),
        # A failure SLO of 1 would let a run whose operations all failed pass.
        (["--slo-failure-ratio", "1"], "slo_failure_ratio: Input should be less than 1"),
    ],
)
def test_a_refused_value_is_a_usage_error(option: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app", "loadtest", "run", *option, "--target", "x"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr

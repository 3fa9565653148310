"""The files a distributed worker sends its master: good names are written, hostile ones are
refused and named, and settings cross from master to worker without credentials."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.loadtest import process_files
from app.loadtest.settings import Handoff, LoadSettings


def test_a_workers_files_are_written_under_their_own_names(tmp_path: Path) -> None:
    files = {"harness-pod-a-7.json": '{"pid": 7}', "roots-pod-a-7.txt": "wf-1\nwf-2\n"}
    assert process_files.write_shipped(tmp_path, files) == []
    assert (tmp_path / "harness-pod-a-7.json").read_text() == '{"pid": 7}'
    assert process_files.read_roots(tmp_path) == {"wf-1", "wf-2"}


def test_hostile_names_and_sizes_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    huge = "x" * (process_files.MAX_SHIPPED_BYTES + 1)
    files = {
        "../harness-escape.json": "{}",
        "/etc/harness-abs.json": "{}",
        "report.json": "{}",
        "harness-big.json": huge,
        "roots-ok.txt": "wf-3",
    }
    refused = process_files.write_shipped(out, files)
    assert sorted(refused) == sorted(
        ["../harness-escape.json", "/etc/harness-abs.json", "report.json", "harness-big.json"]
    )
    assert [p.name for p in out.iterdir()] == ["roots-ok.txt"]
    assert not (tmp_path / "harness-escape.json").exists()


def test_own_files_are_this_process_only(tmp_path: Path) -> None:
    process_files.harness_file(tmp_path).write_text("{}")
    (tmp_path / "harness-other-host-1.json").write_text("{}")
    assert list(process_files.own_files(tmp_path)) == [process_files.harness_file(tmp_path).name]


def test_only_the_target_and_run_settings_cross_to_workers() -> None:
    env = {
        "TEMPORAL_PROFILE": "temporal-a",
        "TEMPORAL_CONFIG_FILE": "/etc/haul/client/temporal.toml",
        "TEMPORAL_API_KEY": "secret-key",
        "TEMPORAL_TLS_CLIENT_KEY_DATA": "-----BEGIN PRIVATE KEY-----",
        "HAUL_DATABASE_URL": "postgresql://haul:pw@db/haul",
    }
    settings = LoadSettings(
        run_tag="lt123",
        entities=4,
        out=Path("/home/haul/loadtest-reports/run"),
        stop_after=30,
        database_url="postgresql://haul:pw@db/haul",
        blob_dir="/srv/blobs",
    )
    wire = Handoff.of(settings, env).model_dump_json()
    for secret in ("secret-key", "PRIVATE KEY", "pw@db", "/srv/blobs", "loadtest-reports"):
        assert secret not in wire
    handoff = Handoff.model_validate_json(wire)
    assert handoff.target == {
        "TEMPORAL_PROFILE": "temporal-a",
        "TEMPORAL_CONFIG_FILE": "/etc/haul/client/temporal.toml",
    }
    worker_env = {"TEMPORAL_ADDRESS": "stale:7233", "TEMPORAL_API_KEY": "worker-own-key"}
    taken = handoff.apply(worker_env)
    assert worker_env == {**handoff.target, "TEMPORAL_API_KEY": "worker-own-key"}
    assert (taken.run_tag, taken.entities, taken.stop_after) == ("lt123", 4, 0.0)


def test_a_worker_refuses_credentials_and_local_settings_from_the_wire() -> None:
    with pytest.raises(ValidationError, match="TEMPORAL_API_KEY"):
        Handoff.model_validate({"target": {"TEMPORAL_API_KEY": "k"}})
    with pytest.raises(ValidationError, match="database_url"):
        Handoff.model_validate({"settings": {"database_url": "postgresql://haul:pw@db/haul"}})
    with pytest.raises(ValidationError, match="out"):
        Handoff.model_validate({"settings": {"out": "/elsewhere"}})

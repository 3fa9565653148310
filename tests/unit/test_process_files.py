"""The files a distributed worker sends its master: good names are written, hostile ones are
refused and named, and settings cross from master to worker without credentials."""

from __future__ import annotations

from pathlib import Path

from app.loadtest import process_files
from app.loadtest.worker_settings import forwarded


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
        "HAUL_LT_RUN_TAG": "lt123",
        "HAUL_LT_ENTITIES": "4",
        "HAUL_LT_OUT": "/home/haul/loadtest-reports/run",
        "HAUL_LT_STOP_AFTER": "30",
    }
    assert forwarded(env) == {
        "TEMPORAL_PROFILE": "temporal-a",
        "TEMPORAL_CONFIG_FILE": "/etc/haul/client/temporal.toml",
        "HAUL_LT_RUN_TAG": "lt123",
        "HAUL_LT_ENTITIES": "4",
    }

"""A real dev cluster keeps its secrets owner-only and still boots its PostgreSQL (run as
another user under root); its recorded processes carry the identity `down` checks; the CLI
takes a DSN with a password from the environment or a file, never from its arguments."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from app.core.procs import stamp
from app.stack.registry import ClusterRecord, Registry


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _haul(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def test_a_running_cluster_keeps_its_password_and_data_from_other_users(
    dev_cluster: ClusterRecord,
) -> None:
    reg = Registry()
    assert dev_cluster.postgres_password
    assert _mode(reg.dir / f"{dev_cluster.name}.json") == 0o600
    # Others may at most pass through (PostgreSQL's own user must reach pgdata), never list.
    for directory in (reg.dir, dev_cluster.path):
        assert _mode(directory) & 0o066 == 0, oct(_mode(directory))
    assert _mode(dev_cluster.pgdata) == 0o700
    rec = reg.get(dev_cluster.name)
    assert rec is not None
    for role in ("postgres", "temporal"):
        assert rec.running(role), role
        assert rec.stamps[role] == stamp(rec.pids[role])


def test_db_migrate_takes_a_password_from_the_environment_or_a_file_not_the_command_line(
    dev_cluster: ClusterRecord, tmp_path: Path
) -> None:
    secret = dev_cluster.dsn()
    refused = _haul("db", "migrate", "--dsn", secret)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "HAUL_DATABASE_URL" in refused.stderr and dev_cluster.postgres_password not in (
        refused.stdout + refused.stderr
    )
    by_env = _haul("db", "migrate", env={"HAUL_DATABASE_URL": secret})
    assert by_env.returncode == 0 and "applied" in by_env.stdout, by_env.stderr
    dsn_file = tmp_path / "dsn"
    dsn_file.write_text(secret)
    by_file = _haul("db", "migrate", "--dsn-file", str(dsn_file))
    assert by_file.returncode == 0 and "applied 0 migration(s)" in by_file.stdout, by_file.stderr

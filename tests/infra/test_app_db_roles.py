"""The app database roles Job's SQL, run for real: psql against a local PostgreSQL 16.

The database is set up as RDS leaves it: a non-superuser master (`temporal`, CREATEROLE and
CREATEDB) that owns the `haul` database, with a table an older release made as that user.
The Job's own command runs twice (it must be idempotent), then migrations run as
`haul_migrate`, and `haul_app` may read and write rows but not change the schema.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from components.appdb import roles_command
from infra_harness import ROOT

from app.core.migrate import migrate
from app.core.procs import stop_pid
from app.stack import postgres as pg

PASSWORDS = {"temporal": "master-pw", "haul_app": "app-pw", "haul_migrate": "migrate-pw"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def dsn(port: int, user: str, database: str = "haul") -> str:
    return f"postgresql://{user}:{PASSWORDS.get(user, 'super')}@127.0.0.1:{port}/{database}"


@pytest.fixture(scope="module")
def rds_like() -> Iterator[int]:
    home = Path(tempfile.mkdtemp(prefix="haul-appdb-"))
    home.chmod(0o755)  # traversable by the unprivileged server user when run as root
    port = _free_port()
    pg.init_cluster(home / "data", "postgres", "super")
    pid = pg.start(home / "data", port, home / "pg.log")
    try:
        pg.wait_ready(dsn(port, "postgres", "postgres"), pid, home / "pg.log")
        with psycopg.connect(dsn(port, "postgres", "postgres"), autocommit=True) as conn:
            conn.execute("create role temporal login createrole createdb password 'master-pw'")
            conn.execute("create database haul owner temporal")
        with psycopg.connect(dsn(port, "temporal")) as conn:
            conn.execute("create table legacy (id int primary key)")
        yield port
    finally:
        stop_pid(pid)
        shutil.rmtree(home, ignore_errors=True)


def run_roles_job(port: int) -> subprocess.CompletedProcess:
    env = {
        "PATH": f"{pg.bin_path('psql').parent}:{os.environ['PATH']}",
        "PGHOST": "127.0.0.1",
        "PGPORT": str(port),
        "PGDATABASE": "haul",
        "PGUSER": "temporal",
        "PGPASSWORD": PASSWORDS["temporal"],
        "PGSSLMODE": "disable",
        "APP_PASSWORD": PASSWORDS["haul_app"],
        "MIGRATE_PASSWORD": PASSWORDS["haul_migrate"],
    }
    return subprocess.run(roles_command(), env=env, capture_output=True, text=True, timeout=60)


def test_app_role_reads_and_writes_rows_and_nothing_more(rds_like):
    port = rds_like
    for attempt in (1, 2):  # a rerun (new image, new deploy) must succeed as well
        done = run_roles_job(port)
        assert done.returncode == 0, f"run {attempt}: {done.stderr}"
    applied = migrate(dsn(port, "haul_migrate"), ROOT / "migrations" / "postgres")
    assert applied, "no migration ran as haul_migrate"
    with psycopg.connect(dsn(port, "haul_migrate")) as conn:
        owners = dict(
            conn.execute(
                "select tablename, tableowner from pg_tables where schemaname = 'public'"
            ).fetchall()
        )
    assert set(owners.values()) == {"haul_migrate"}, owners  # the legacy table moved too
    table = next(t for t in owners if t not in ("legacy", "schema_migrations"))
    with psycopg.connect(dsn(port, "haul_app")) as conn:
        conn.execute("insert into legacy values (1)")
        assert conn.execute("select count(*) from legacy").fetchone() == (1,)
        conn.execute("delete from legacy")
        conn.execute(f"select * from {table} limit 1")
    for ddl in (
        "create table mine (id int)",
        f"drop table {table}",
        "alter table legacy add x int",
    ):
        with (
            psycopg.connect(dsn(port, "haul_app")) as conn,
            pytest.raises(psycopg.errors.InsufficientPrivilege),
        ):
            conn.execute(ddl)
    with psycopg.connect(dsn(port, "haul_app")) as conn:
        role = conn.execute(
            "select rolsuper, rolcreaterole, rolcreatedb from pg_roles where rolname = 'haul_app'"
        ).fetchone()
    assert role == (False, False, False)

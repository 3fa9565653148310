"""The migrations runner: once each, checksum refusal, and concurrent runs serialised."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from app.core.migrate import LOCK_KEY, MigrationError, migrate
from app.stack import postgres
from app.stack.registry import ClusterRecord


@pytest.fixture
def scratch_dsn(dev_cluster: ClusterRecord) -> Iterator[str]:
    """A fresh database on the dev cluster's Postgres, dropped afterwards."""
    name = f"mig_{uuid.uuid4().hex[:10]}"
    postgres.ensure_database(dev_cluster.dsn("postgres"), name)
    yield dev_cluster.dsn(name)
    with psycopg.connect(dev_cluster.dsn("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("drop database {} with (force)").format(sql.Identifier(name)))


def write(directory: Path, name: str, body: str) -> None:
    directory.mkdir(exist_ok=True)
    (directory / name).write_text(body)


def test_each_file_runs_once_and_is_recorded(scratch_dsn: str, tmp_path: Path) -> None:
    write(tmp_path, "0001_things.sql", "create table things (id int primary key);")
    write(tmp_path, "0002_more.sql", "insert into things values (1);")
    assert migrate(scratch_dsn, tmp_path) == ["0001_things.sql", "0002_more.sql"]
    assert migrate(scratch_dsn, tmp_path) == []
    with psycopg.connect(scratch_dsn) as conn:
        assert conn.execute("select count(*) from things").fetchone() == (1,)
        versions = conn.execute("select version from schema_migrations order by 1").fetchall()
    assert versions == [(1,), (2,)]


def test_a_failing_file_rolls_back_and_is_not_recorded(scratch_dsn: str, tmp_path: Path) -> None:
    write(tmp_path, "0001_bad.sql", "create table half (id int); select * from missing_table;")
    with pytest.raises(psycopg.errors.UndefinedTable):
        migrate(scratch_dsn, tmp_path)
    with psycopg.connect(scratch_dsn) as conn:
        assert conn.execute("select to_regclass('half')").fetchone() == (None,)
        assert conn.execute("select count(*) from schema_migrations").fetchone() == (0,)


def test_an_edited_applied_file_is_refused(scratch_dsn: str, tmp_path: Path) -> None:
    write(tmp_path, "0001_things.sql", "create table things (id int primary key);")
    migrate(scratch_dsn, tmp_path)
    write(tmp_path, "0001_things.sql", "create table things (id bigint primary key);")
    with pytest.raises(MigrationError, match="0001_things.sql was changed after it was applied"):
        migrate(scratch_dsn, tmp_path)


def test_concurrent_runs_are_serialised_by_the_advisory_lock(
    scratch_dsn: str, tmp_path: Path
) -> None:
    write(tmp_path, "0001_things.sql", "create table things (id int primary key);")
    results: list[list[str]] = []
    with psycopg.connect(scratch_dsn, autocommit=True) as holder:
        holder.execute("select pg_advisory_lock(%s)", (LOCK_KEY,))
        threads = [
            threading.Thread(target=lambda: results.append(migrate(scratch_dsn, tmp_path)))
            for _ in range(2)
        ]
        for t in threads:
            t.start()
        # Both runners wait on the lock we hold, as Postgres itself reports: nothing applied yet.
        assert _waiters_on_lock(holder, want=2, deadline=60.0) == 2
        assert results == []
        holder.execute("select pg_advisory_unlock(%s)", (LOCK_KEY,))
    for t in threads:
        t.join(30)
    assert sorted(results) == [[], ["0001_things.sql"]]


def _waiters_on_lock(conn: psycopg.Connection, want: int, deadline: float) -> int:
    """Sessions of this database waiting for the migrator's advisory lock, polled until `want`
    of them wait or the deadline passes (threads reach the lock when the machine lets them)."""
    end = time.monotonic() + deadline
    while True:
        row = conn.execute(
            """select count(*) from pg_locks l join pg_database d on d.oid = l.database
               where l.locktype = 'advisory' and not l.granted and d.datname = current_database()
                 and l.classid = %s and l.objid = %s and l.objsubid = 1""",
            (LOCK_KEY >> 32, LOCK_KEY & 0xFFFFFFFF),
        ).fetchone()
        waiting = row[0] if row else 0
        if waiting >= want or time.monotonic() > end:
            return waiting
        time.sleep(0.05)


def test_the_shipped_migrations_apply(scratch_dsn: str) -> None:
    applied = migrate(scratch_dsn)
    assert applied and applied[0] == "0001_platform.sql"

"""Two dev clusters for a migration test module, and the migration state on a clean slate.

A module that walks a migration names its clusters `OLD` and `NEW` and takes the fixtures
(`records`, `store`, `worker`) from here, through the tier's conftest.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from app.core.database import Database
from app.core.migrate import migrate
from app.platform import migration_checks
from app.platform.client import connect
from app.platform.discovery import discover
from app.platform.migration_state import MigrationStore
from app.stack import cluster
from app.stack.registry import ClusterRecord, Registry
from app.stack.workers import start_worker, stop_worker


@contextmanager
def two_clusters(old: str, new: str) -> Iterator[dict[str, ClusterRecord]]:
    """Both dev clusters up (the app database is the old one's), and down with purge after."""
    recs: dict[str, ClusterRecord] = {}
    try:
        for name in (old, new):
            recs[name] = cluster.up(name, "dev", headless=True)
        migrate(recs[old].dsn())
        yield recs
    finally:
        for name in recs:
            cluster.down(name, purge=True)


@contextmanager
def clean_store(dsn: str) -> Iterator[MigrationStore]:
    """The state store with no migration row, no routers and no claims."""
    db = Database(dsn)
    with db.connect() as conn:
        conn.execute(
            "truncate cluster_migration, cluster_migration_history, cluster_routers, cluster_claims"
        )
    try:
        yield MigrationStore(db)
    finally:
        db.close()


@pytest.fixture(scope="module")
def records(request: pytest.FixtureRequest) -> Iterator[dict[str, ClusterRecord]]:
    """The module's OLD and NEW dev clusters."""
    with two_clusters(request.module.OLD, request.module.NEW) as recs:
        yield recs


@pytest.fixture
def store(
    records: dict[str, ClusterRecord], request: pytest.FixtureRequest
) -> Iterator[MigrationStore]:
    """The state store on a clean slate: no migration row, no routers, no claims."""
    with clean_store(records[request.module.OLD].dsn()) as fresh_store:
        yield fresh_store


@pytest.fixture
def worker(
    records: dict[str, ClusterRecord],
    store: MigrationStore,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> Iterator[int]:
    """`haul worker` for the old cluster, following the migration state (polls both)."""
    monkeypatch.setenv("HAUL_MIGRATION", "true")
    rec = records[request.module.OLD]
    pid = start_worker(rec)
    try:
        yield pid
    finally:
        stop_worker(rec)


def wait_until(check: Callable[[], bool], what: str, timeout: float = 120) -> None:
    """Poll `check` until it holds; a deadline a loaded machine still meets."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


def polled_on(name: str) -> bool:
    """A worker polls every discovered task queue on cluster `name`."""

    async def check() -> bool:
        client = await connect(name, config_file=str(Registry().profile_file))
        return not await migration_checks.missing_pollers(client, discover())

    return asyncio.run(check())

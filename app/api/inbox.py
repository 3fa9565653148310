"""The service behind the API: the store, the clusters, and the poller loop of `haul api`.

During a migration the router holds a client per cluster; each gets its own poller (its own
high-water mark), and redrives go through the router like any start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import quote

import psycopg
from psycopg.rows import dict_row
from temporalio.client import Client

from app.api.models import FilterParams
from app.core.database import Database
from app.platform.client import HaulClient
from app.platform.failure_poller import Poller
from app.platform.failures import FailureFilter, FailureStore, StoredFailure
from app.platform.redrive import follow_redrives

log = logging.getLogger("haul.api")


class PooledFailureStore(FailureStore):
    """The failure store over one connection pool: a page makes several small reads, and a new
    connection for each (what the CLI's store does) costs more than the reads themselves."""

    def __init__(self, dsn: str, size: int = 8) -> None:
        super().__init__(dsn)
        self.db = Database(dsn, size=size)

    @contextmanager
    def _pooled(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        with self.db.connect() as conn:
            conn.row_factory = dict_row
            yield cast(psycopg.Connection[dict[str, Any]], conn)

    def _connect(self) -> psycopg.Connection[dict[str, Any]]:
        # FailureStore uses `with self._connect() as conn`; the pool's context returns the
        # connection to the pool instead of closing it.
        return cast(psycopg.Connection[dict[str, Any]], self._pooled())

    def close(self) -> None:
        self.db.close()


@dataclass
class Inbox:
    store: FailureStore
    haul: HaulClient
    # The name records carry for the cluster of a router without a migration (its key "").
    cluster: str = "default"
    temporal_ui_url: str = ""
    teams: Mapping[str, str] = field(default_factory=dict)
    poll_seconds: float = 10.0
    max_redrive_rate: float = 20.0
    max_bulk: int = 1000

    def clients(self) -> dict[str, Client]:
        """Every cluster the router knows, by the name its records carry."""
        return {(name or self.cluster): c for name, c in self.haul.router.clients.items()}

    def filter(self, params: FilterParams) -> FailureFilter:
        return params.failure_filter(datetime.now(UTC))

    def ui_link(self, f: StoredFailure, run_id: str | None = None) -> str | None:
        """The run's history page in the Temporal UI, when we know where the UI is."""
        if not self.temporal_ui_url:
            return None
        base = self.temporal_ui_url.rstrip("/")
        return (
            f"{base}/namespaces/{quote(f.namespace, safe='')}/workflows/"
            f"{quote(f.workflow_id, safe='')}/{quote(run_id or f.run_id, safe='')}/history"
        )

    async def follow(self) -> int:
        """Record the outcome of redrives whose runs have closed, on every cluster."""
        closed = 0
        for name, client in self.clients().items():
            try:
                closed += await follow_redrives(client, self.store)
            except Exception as exc:  # a cluster that is down must not stop the others
                log.warning("following redrives failed", extra={"cluster": name, "error": str(exc)})
        return closed

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every cluster for failures and follow redrives until `stop` is set. A cluster
        the router connects later (a migration started while we run) gets its poller then."""
        pollers: dict[str, asyncio.Task[None]] = {}
        try:
            while not stop.is_set():
                for name, client in self.clients().items():
                    if name not in pollers:
                        poller = Poller(client, self.store, cluster=name, teams=self.teams)
                        pollers[name] = asyncio.create_task(
                            poller.run(stop, self.poll_seconds), name=f"failure-poller-{name}"
                        )
                await self.follow()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.poll_seconds)
        finally:
            stop.set()
            tasks = list(pollers.values())
            await asyncio.gather(*tasks, return_exceptions=True)

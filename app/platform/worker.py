"""The worker builder: one process serves many task queues, found by discovery.

Workers take the converter, interceptors and failure activity from the haul plugin their
client carries (see app.platform.plugin). On SIGTERM the process stops polling and lets
in-flight activities finish within the grace period. It serves the SDK's Prometheus metrics
and `/healthz` on one port (app.platform.health), and logs as JSON. During a cluster
migration one process polls both clusters (ClusterWorkers).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import PollerBehaviorSimpleMaximum, Worker

from app.core.blobstore import BlobStore, open_store
from app.core.database import Database
from app.core.settings import Settings
from app.core.target import Target
from app.platform import sandbox, tracing
from app.platform.client import HaulClient
from app.platform.discovery import DOMAIN_PACKAGES, Discovered, activity_names, discover
from app.platform.failures import FailureStore
from app.platform.handoff import Handoff, HandoffResume
from app.platform.handoff_activities import HandoffActivities
from app.platform.health import HealthServer
from app.platform.plugin import HaulPlugin

log = logging.getLogger("haul.worker")


@dataclass
class WorkerContext:
    """What activity service classes receive when they take a constructor argument.

    Activities that start or signal workflows use `haul`, which routes by ID across a
    migration, never the client their worker polls with. Activities that need the app
    database or the blob store take the process's one pool and one store from here, made on
    first use, so two service classes never hold two pools to the same database.
    """

    settings: Settings
    haul: HaulClient
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _database: Database | None = field(default=None, repr=False)
    _blobs: BlobStore | None = field(default=None, repr=False)

    @property
    def database_url(self) -> str:
        return self.settings.database_url or os.environ.get("HAUL_DATABASE_URL", "")

    @property
    def blob_dir(self) -> str:
        return self.settings.blob_dir or os.environ.get("HAUL_BLOB_DIR", "")

    def database(self) -> Database:
        """The shared pool; raises DatabaseNotConfiguredError when no database is set."""
        with self._lock:
            if self._database is None:
                self._database = Database(self.database_url)
            return self._database

    def blobs(self) -> BlobStore:
        """The shared blob store; raises ValueError when none is set or it is malformed."""
        with self._lock:
            if self._blobs is None:
                self._blobs = open_store(self.blob_dir)
            return self._blobs


def _instantiate(cls: type, ctx: WorkerContext) -> Any:
    return cls(ctx) if inspect.signature(cls).parameters else cls()


def build_workers(
    client: Client,
    discovered: Discovered,
    settings: Settings,
    task_queues: Iterable[str] | None = None,
    *,
    haul: HaulClient | None = None,
) -> list[Worker]:
    """One Worker per task queue, with every workflow and activity discovery found for it.

    The client must come from `connect`: its haul plugin gives each worker the failure
    interceptor and the failure activity. `haul` is what activities start and signal
    through (default: `client` alone)."""
    if not any(isinstance(p, HaulPlugin) for p in client.config()["plugins"]):
        raise ValueError(
            "build_workers needs a client made by app.platform.client.connect (it carries the "
            "haul plugin: converter, interceptors, failure activity)"
        )
    wanted = list(task_queues or settings.task_queues or discovered.queues)
    unknown = [q for q in wanted if q not in discovered.queues]
    if unknown:
        raise ValueError(
            f"no workflows or activities are registered for task queue(s) {unknown}; "
            f"known queues: {sorted(discovered.queues)}"
        )
    ctx = WorkerContext(settings, haul or HaulClient(client))
    executor = ThreadPoolExecutor(max_workers=max(4, settings.max_concurrent_activities))
    runners: dict[str, Any] = sandbox.worker_runners(
        sandbox.WorkflowSandbox(settings.workflow_sandbox)
    )
    workers = []
    for name in wanted:
        reg = discovered.queues[name]
        activities: list[Any] = []
        for cls in reg.activity_classes:
            instance = _instantiate(cls, ctx)
            activities += [getattr(instance, m.__name__) for m in activity_names(cls).values()]
        workflows = list(reg.workflows)
        if any(issubclass(w, Handoff) for w in workflows):
            # Opted-in workflows hand off through these, on their own task queue.
            handoff = HandoffActivities(ctx.haul)
            activities += [handoff.record, handoff.forward, handoff.resume]
            workflows.append(HandoffResume)
        workers.append(
            Worker(
                client,
                task_queue=name,
                workflows=workflows,
                activities=activities,
                activity_executor=executor,
                max_concurrent_activities=settings.max_concurrent_activities,
                max_concurrent_workflow_tasks=settings.max_concurrent_workflow_tasks,
                graceful_shutdown_timeout=timedelta(seconds=settings.graceful_shutdown_seconds),
                workflow_task_poller_behavior=PollerBehaviorSimpleMaximum(
                    settings.workflow_task_pollers
                ),
                activity_task_poller_behavior=PollerBehaviorSimpleMaximum(
                    settings.activity_task_pollers
                ),
                disable_eager_activity_execution=not settings.eager_activities,
                **runners,
            )
        )
    return workers


class ClusterWorkers:
    """One set of workers per cluster the migration state names, on one runtime.

    From `dual` on, the router knows both clusters and every task queue is polled on both;
    once the state is `single` on the new cluster (or an abort is back to `single` on the old
    one), the workers of the cluster left behind shut down gracefully.
    """

    def __init__(self, haul: HaulClient, build: Callable[[Client], list[Worker]]) -> None:
        self.haul = haul
        self.build = build
        self.running: dict[str, tuple[list[Worker], list[asyncio.Task[None]]]] = {}

    def wanted(self) -> list[str]:
        """The clusters to poll now: the state's old one, and its new one if any."""
        state = self.haul.router.state
        return [c for c in (state.old, state.new) if c is not None]

    async def sync(self) -> None:
        """Start workers where the state wants them and the router can reach; stop the rest."""
        wanted = self.wanted()
        for cluster in wanted:
            client = self.haul.router.clients.get(cluster)
            if cluster not in self.running and client is not None:
                workers = self.build(client)
                tasks = [asyncio.create_task(w.run()) for w in workers]
                self.running[cluster] = (workers, tasks)
                log.info(
                    "polling",
                    extra={"cluster": cluster, "task_queues": [w.task_queue for w in workers]},
                )
        for cluster in [c for c in self.running if c not in wanted]:
            log.info("stopping polling", extra={"cluster": cluster})
            await self._stop(cluster)

    def failed(self) -> BaseException | None:
        """The error of the first worker that stopped by itself, if any."""
        for _, tasks in self.running.values():
            for task in tasks:
                if task.done():
                    return task.exception() or RuntimeError("a worker stopped polling")
        return None

    async def _stop(self, cluster: str) -> None:
        workers, tasks = self.running.pop(cluster)
        await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
        await asyncio.gather(*tasks, return_exceptions=True)

    async def stop(self) -> None:
        await asyncio.gather(*(self._stop(c) for c in list(self.running)))

    async def serve(self, stop: asyncio.Event, check_seconds: float = 1.0) -> None:
        """Follow the state until `stop` is set or a worker fails; then shut every one down."""
        try:
            while True:
                await self.sync()
                error = self.failed()
                if error is not None:
                    log.error("worker failed", exc_info=error)
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), check_seconds)
                if stop.is_set():
                    return
        finally:
            await self.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def run_worker(
    *,
    profile: str | None = None,
    config_file: str | None = None,
    migration: bool = False,
    settings: Settings | None = None,
    task_queues: Iterable[str] | None = None,
    packages: Iterable[str] = DOMAIN_PACKAGES,
    stop: asyncio.Event | None = None,
) -> None:
    """Run workers until SIGTERM/SIGINT (or `stop`), then shut down gracefully.

    With `migration` the process follows the migration state in the app database and polls
    every cluster it names (see ClusterWorkers): two clients, one runtime, one health port.
    """
    settings = settings or Settings()
    stop = stop or asyncio.Event()
    metrics_port = _free_port()
    runtime = Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(bind_address=f"127.0.0.1:{metrics_port}")
        )
    )
    store = FailureStore(settings.database_url) if settings.database_url else None
    target = Target(
        profile=profile,
        config_file=config_file,
        database_url=settings.database_url,
        migration=migration,
    )
    haul = await HaulClient.connect(target, failure_store=store, runtime=runtime)
    discovered = discover(packages)
    pool = ClusterWorkers(
        haul, lambda client: build_workers(client, discovered, settings, task_queues, haul=haul)
    )
    health = HealthServer(
        settings.health_host, settings.health_port, f"http://127.0.0.1:{metrics_port}/metrics"
    )
    await health.start()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await pool.sync()
    health.readiness.ready = True
    log.info("worker started", extra={"health_port": settings.health_port})
    try:
        await pool.serve(stop)
    finally:
        health.readiness.ready = False
        log.info(
            "worker shutting down; in-flight activities get %ss",
            settings.graceful_shutdown_seconds,
        )
        await pool.stop()
        await haul.close()
        await health.stop()
        tracing.shutdown()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)

"""The worker builder: one process serves many task queues, found by discovery.

Workers take the converter, interceptors and failure activity from the haul plugin their
client carries (see app.platform.plugin). On SIGTERM the process stops polling and lets
in-flight activities finish within the grace period. It serves the SDK's Prometheus metrics
and `/healthz` on one port (app.platform.health), and logs as JSON.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import signal
import socket
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Worker

from app.core.settings import Settings
from app.platform import tracing
from app.platform.client import HaulClient, connect
from app.platform.discovery import DOMAIN_PACKAGES, Discovered, activity_names, discover
from app.platform.failures import FailureStore
from app.platform.health import HealthServer
from app.platform.plugin import HaulPlugin

log = logging.getLogger("haul.worker")


@dataclass
class WorkerContext:
    """What activity service classes receive when they take a constructor argument.

    Activities that start or signal workflows use `haul`, which routes by ID across a
    migration, never the client their worker polls with.
    """

    settings: Settings
    haul: HaulClient


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
    workers = []
    for name in wanted:
        reg = discovered.queues[name]
        activities: list[Any] = []
        for cls in reg.activity_classes:
            instance = _instantiate(cls, ctx)
            activities += [getattr(instance, m.__name__) for m in activity_names(cls).values()]
        workers.append(
            Worker(
                client,
                task_queue=name,
                workflows=reg.workflows,
                activities=activities,
                activity_executor=executor,
                max_concurrent_activities=settings.max_concurrent_activities,
                max_concurrent_workflow_tasks=settings.max_concurrent_workflow_tasks,
                graceful_shutdown_timeout=timedelta(seconds=settings.graceful_shutdown_seconds),
            )
        )
    return workers


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def run_worker(
    *,
    profile: str | None = None,
    config_file: str | None = None,
    settings: Settings | None = None,
    task_queues: Iterable[str] | None = None,
    packages: Iterable[str] = DOMAIN_PACKAGES,
    stop: asyncio.Event | None = None,
) -> None:
    """Run workers until SIGTERM/SIGINT (or `stop`), then shut down gracefully."""
    settings = settings or Settings()
    stop = stop or asyncio.Event()
    metrics_port = _free_port()
    runtime = Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(bind_address=f"127.0.0.1:{metrics_port}")
        )
    )
    store = FailureStore(settings.database_url) if settings.database_url else None
    client = await connect(
        profile, config_file=config_file, failure_store=store, runtime=runtime
    )
    workers = build_workers(client, discover(packages), settings, task_queues)
    health = HealthServer(
        settings.health_host, settings.health_port, f"http://127.0.0.1:{metrics_port}/metrics"
    )
    await health.start()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runs = [asyncio.create_task(w.run()) for w in workers]
    health.readiness.ready = True
    log.info(
        "worker started",
        extra={"task_queues": [w.task_queue for w in workers], "health_port": settings.health_port},
    )
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait([stopped, *runs], return_when=asyncio.FIRST_COMPLETED)
    health.readiness.ready = False
    log.info(
        "worker shutting down; in-flight activities get %ss", settings.graceful_shutdown_seconds
    )
    await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
    for task in runs:
        if task.done() and task.exception():
            log.error("worker failed", exc_info=task.exception())
    await health.stop()
    tracing.shutdown()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(sig)

"""`haul worker`: serve the discovered task queues until SIGTERM."""

from __future__ import annotations

import asyncio

import typer


def worker(
    task_queue: list[str] = typer.Option(
        [], "--task-queue", "-q", help="Task queue to serve (repeatable); default: all discovered."
    ),
    cluster: str | None = typer.Option(
        None, help="Local cluster to serve (its envconfig profile); default: TEMPORAL_* / profile."
    ),
) -> None:
    """Run a worker for the discovered workflows and activities until SIGTERM.

    Connection comes from envconfig (temporal.toml profile and TEMPORAL_* variables). On
    SIGTERM it stops polling and lets in-flight activities finish within
    HAUL_GRACEFUL_SHUTDOWN_SECONDS. Serves /healthz and /metrics on HAUL_WORKER_HEALTH_PORT.
    """
    from app.platform import logs
    from app.platform.worker import run_worker

    logs.configure()
    config_file = None
    if cluster:
        from app.stack.cluster import profile_file

        config_file = str(profile_file())
    asyncio.run(
        run_worker(profile=cluster, config_file=config_file, task_queues=task_queue or None)
    )

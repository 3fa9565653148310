"""`haul worker`: serve the discovered task queues until SIGTERM."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from collections.abc import Callable


def event_loop_factory(kind: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when asked for and installed (it is not on Windows), else asyncio's.
    Profiled under load, the event loop's own bookkeeping was the largest part of the
    worker's Python CPU once the sandbox stopped re-importing modules (loadtest/PROFILE.md)."""
    if kind != "uvloop":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def worker(
    task_queue: list[str] = typer.Option(
        [], "--task-queue", "-q", help="Task queue to serve (repeatable); default: all discovered."
    ),
    cluster: str | None = typer.Option(
        None, help="Local cluster to serve (its profile, app database and blob store); default: "
        "TEMPORAL_* / profile with HAUL_DATABASE_URL and HAUL_BLOB_DIR."
    ),
) -> None:
    """Run a worker for the discovered workflows and activities until SIGTERM.

    Connection comes from envconfig (temporal.toml profile and TEMPORAL_* variables). On
    SIGTERM it stops polling and lets in-flight activities finish within
    HAUL_GRACEFUL_SHUTDOWN_SECONDS. Serves /healthz and /metrics on HAUL_WORKER_HEALTH_PORT.
    With HAUL_MIGRATION it polls every cluster the migration state names, from `dual` until
    `single` on the new one.
    """
    from app.core.settings import Settings
    from app.platform import logs
    from app.platform.worker import run_worker
    from app.stack import targets

    logs.configure()
    target = targets.resolve(cluster)
    # The same app database and blob store as `haul run` gives its worker.
    settings = Settings(database_url=target.database_url, blob_dir=target.blob_dir)
    with asyncio.Runner(loop_factory=event_loop_factory(settings.event_loop)) as runner:
        runner.run(
            run_worker(
                profile=target.profile,
                config_file=target.config_file,
                migration=target.migration,
                settings=settings,
                task_queues=task_queue or None,
            )
        )

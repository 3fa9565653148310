"""`haul worker`: serve the discovered task queues until SIGTERM."""

from __future__ import annotations

import asyncio

import typer


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
    asyncio.run(
        run_worker(
            profile=target.profile,
            config_file=target.config_file,
            migration=target.migration,
            settings=settings,
            task_queues=task_queue or None,
        )
    )

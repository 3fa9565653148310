"""`haul api`: serve the failure inbox (JSON API, pages, poller) with uvicorn."""

from __future__ import annotations

import asyncio
import logging
import os

import typer

from app.core.target import Target


def cluster_name(target: Target) -> str:
    """The name failure records carry for a target outside a migration.

    During a migration the router names each cluster by its envconfig profile; naming the
    cluster by that same profile before the migration keeps its records and high-water mark
    under one name, so a run is never recorded twice under two."""
    return target.cluster or target.profile or os.environ.get("TEMPORAL_PROFILE") or "default"


def api(
    cluster: str | None = typer.Option(
        None,
        help="Local cluster (its profile, app database and Temporal UI); default: the envconfig "
        "profile with HAUL_DATABASE_URL.",
    ),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0 in a pod)."),
    port: int | None = typer.Option(
        None,
        min=1,
        max=65535,
        help="Port to listen on; default: the local cluster's api port, else 8080.",
    ),
) -> None:
    """Serve the failure inbox: the dashboard at /, the JSON API under /api/failures, OpenAPI
    at /docs, and /healthz.

    It also runs the failure poller on every cluster (each HAUL_API_POLL_SECONDS) and follows
    redrives until they close, so it writes failure records and redrive outcomes to the app
    database. Redrive, resolve and reopen need the token from HAUL_API_TOKEN or
    HAUL_API_TOKEN_FILE; with neither set they are refused. Stops on SIGTERM or Ctrl-C.
    """
    import uvicorn

    from app.api import create_app
    from app.api.auth import Auth
    from app.api.inbox import Inbox, PooledFailureStore
    from app.core.settings import ApiSettings
    from app.platform import logs
    from app.platform.client import HaulClient
    from app.platform.discovery import discovered_task_queues
    from app.stack import targets
    from app.stack.registry import Registry

    logs.configure()
    target = targets.resolve(cluster)
    settings = ApiSettings(database_url=target.database_url)
    if not settings.database_url:
        raise typer.BadParameter(
            "no app database: set HAUL_DATABASE_URL or pass --cluster for a local cluster"
        )
    token = settings.token()
    if token is None:
        logging.getLogger("haul.api").warning(
            "no API token configured (HAUL_API_TOKEN, HAUL_API_TOKEN_FILE): redrive, resolve "
            "and reopen are refused"
        )
    ui = settings.temporal_ui_url
    rec = Registry().get(target.cluster) if target.cluster else None
    if rec is not None:
        ui = ui or rec.ui_url
        port = port or rec.port("api")
    listen = port or 8080

    async def serve() -> None:
        haul = await HaulClient.connect(target)
        store = PooledFailureStore(settings.database_url)
        try:
            inbox = Inbox(
                store=store,
                haul=haul,
                cluster=cluster_name(target),
                temporal_ui_url=ui,
                teams={q: ",".join(sorted(t)) for q, t in discovered_task_queues().items()},
                poll_seconds=settings.api_poll_seconds,
                max_redrive_rate=settings.api_max_redrive_rate,
                max_bulk=settings.api_max_bulk,
            )
            app = create_app(inbox, Auth(token, read_auth=settings.api_read_auth))
            config = uvicorn.Config(
                app, host=host, port=listen, log_config=None, proxy_headers=True, access_log=True
            )
            await uvicorn.Server(config).serve()
        finally:
            store.close()
            await haul.close()

    asyncio.run(serve())

"""`haul failures ...`: the failure store, from the terminal."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import typer
from rich.console import Console
from rich.table import Table
from temporalio.client import Client

from app.cli.db import resolve_dsn
from app.platform.failures import FailureStore, redrive, sweep

app = typer.Typer(help="Terminal workflow failures: list, sweep and redrive.", no_args_is_help=True)
console = Console()

CLUSTER = typer.Option(None, help="Local cluster (database and Temporal profile).")


async def _client(cluster: str | None) -> Client:
    from app.platform.client import connect
    from app.stack import targets

    target = targets.resolve(cluster)
    return await connect(target.profile, config_file=target.config_file)


@app.command("list")
def list_(
    cluster: str | None = CLUSTER,
    all_: bool = typer.Option(False, "--all", help="Include failures already redriven."),
) -> None:
    """Show stored failures, newest first. Changes nothing."""
    table = Table("id", "workflow ID", "type", "error", "failed at", "redriven")
    for f in FailureStore(resolve_dsn(cluster)).list(open_only=not all_):
        table.add_row(
            str(f.id),
            f.workflow_id,
            f.workflow_type,
            f"{f.error_type}: {f.error_message[:60]}",
            f.failed_at.strftime("%Y-%m-%d %H:%M:%S"),
            f.redrive_run_id or "-",
        )
    console.print(table)


@app.command("sweep")
def sweep_(
    cluster: str | None = CLUSTER,
    hours: float = typer.Option(24, help="Look back this many hours."),
) -> None:
    """Record runs that timed out or were terminated (visibility query) into the store."""

    async def go() -> int:
        store = FailureStore(resolve_dsn(cluster))
        since = datetime.now(UTC) - timedelta(hours=hours)
        return await sweep(await _client(cluster), store, since)

    console.print(f"recorded {asyncio.run(go())} timed-out or terminated run(s)")


@app.command("redrive")
def redrive_(failure_id: int, cluster: str | None = CLUSTER) -> None:
    """Start the failed workflow again under its ID with its original arguments."""

    async def go() -> str:
        from app.platform.client import HaulClient
        from app.stack import targets

        store = FailureStore(resolve_dsn(cluster))
        haul = await HaulClient.connect(targets.resolve(cluster))
        try:
            return await redrive(haul.router, store, failure_id)
        finally:
            await haul.close()

    console.print(f"failure {failure_id} redriven as run {asyncio.run(go())}")

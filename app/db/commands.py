"""`haul db ...`: the app database."""

from __future__ import annotations

import os

import typer
from rich.console import Console

from app.db.migrate import migrate as run_migrations

app = typer.Typer(help="The app database.", no_args_is_help=True)
console = Console()


def resolve_dsn(cluster: str | None, dsn: str | None) -> str:
    """A DSN from --dsn, HAUL_DATABASE_URL, or the named local cluster."""
    if dsn:
        return dsn
    if cluster is None and os.environ.get("HAUL_DATABASE_URL"):
        return os.environ["HAUL_DATABASE_URL"]
    from app.stack.registry import Registry

    rec = Registry().get(cluster or "default")
    if rec is None:
        raise typer.BadParameter(
            "no database given: pass --dsn, set HAUL_DATABASE_URL, or start a cluster "
            "with `haul stack up`"
        )
    return rec.dsn()


@app.command("migrate")
def migrate(
    cluster: str | None = typer.Option(None, help="Local cluster whose app database to use."),
    dsn: str | None = typer.Option(None, help="Postgres DSN (else HAUL_DATABASE_URL)."),
) -> None:
    """Apply pending SQL migrations from migrations/postgres, each once, in a transaction."""
    applied = run_migrations(resolve_dsn(cluster, dsn))
    console.print(
        f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else "")
    )

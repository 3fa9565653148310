"""`haul stack ...`: start, inspect and stop named local clusters."""

from __future__ import annotations

import click
import typer
from rich.console import Console
from rich.table import Table

from app.stack import cluster
from app.stack.registry import ClusterNameError, check_name

app = typer.Typer(
    help="Start, inspect and stop named local Temporal clusters.", no_args_is_help=True
)
console = Console()


def _name(value: str) -> str:
    """Refuse an unsafe cluster name before anything touches files or ports."""
    try:
        return check_name(value)
    except ClusterNameError as err:
        raise typer.BadParameter(str(err)) from None


@app.command("up")
def up(
    backend: str = typer.Option("dev", help="dev (embedded dev server), postgres or cassandra."),
    name: str = typer.Option(
        "default",
        callback=_name,
        help="Cluster name (lowercase letters, digits, '-'); each gets its own ports and data.",
    ),
    shards: int | None = typer.Option(None, help="numHistoryShards (fixed at first boot)."),
    port_base: int | None = typer.Option(None, help="First port of this cluster's block."),
    headless: bool = typer.Option(False, help="Do not start the Web UI (dev backend)."),
    tls: bool = typer.Option(
        False,
        help="Serve Postgres, and temporal-server's frontend, over TLS from a generated CA.",
    ),
    mtls: bool = typer.Option(
        False,
        help="Like --tls, and the frontend requires a client certificate and a JWT (the "
        "server's authorizer): the cluster's profile gets the worker role, `<name>.admin` "
        "the admin role (postgres and cassandra backends).",
    ),
) -> None:
    """Start a named cluster, or confirm it is running. Safe to run again.

    Starts Postgres (the app database), then Temporal, then registers every namespace of the
    cluster's ClusterSpec with its retention and search attributes.
    """
    with console.status(f"starting cluster {name!r} ({backend}) ..."):
        rec = cluster.up(
            name,
            backend,
            shards=shards,
            port_base=port_base,
            headless=headless,
            tls=tls,
            mtls=mtls,
        )
    console.print(f"[green]cluster {rec.name!r} is up[/green]")
    _print([rec])


@app.command("down")
def down(
    name: str = typer.Argument(..., callback=_name, help="Cluster name."),
    purge: bool = typer.Option(False, help="Also delete its data and forget it."),
) -> None:
    """Stop only this cluster's processes (by their recorded pids)."""
    cluster.down(name, purge=purge)
    console.print(f"cluster {name!r} stopped" + (" and purged" if purge else ""))


@app.command("check")
def check(
    name: str = typer.Argument(..., callback=_name, help="Cluster name."),
    keyspace: str | None = typer.Option(
        None, help="Check this CQL keyspace instead of the cluster's own (cassandra backend)."
    ),
) -> None:
    """Validate a live cluster and report each check; changes nothing but a scratch LWT row.

    Checks keyspace replication and datacenter, schema versions against what the pinned
    server needs, a working lightweight transaction, the Postgres TLS mode and the
    registered namespaces. Exits 1 when any check fails.
    """
    from app.stack import check as checks
    from app.stack.registry import Registry

    rec = Registry().get(name)
    if rec is None:
        raise typer.BadParameter(f"no cluster named {name!r}; `haul stack status` lists them")
    results = checks.run_checks(rec, keyspace=keyspace)
    table = Table("check", "result", "detail", title=f"cluster {name!r} ({rec.backend})")
    for res in results:
        table.add_row(res.name, "[green]ok[/green]" if res.ok else "[red]FAIL[/red]", res.detail)
    console.print(table)
    failed = [r.name for r in results if not r.ok]
    if failed:
        # A ClickException (not typer.Exit) so the exit code survives `haul`'s main().
        raise click.ClickException(f"{len(failed)} check(s) failed: {', '.join(failed)}")


@app.command("status")
def status() -> None:
    """List every cluster: frontend, UI, metrics, app database (password masked), processes."""
    rows = cluster.status()
    if not rows:
        console.print("no clusters; start one with `haul stack up`")
        return
    _print([rec for rec, _ in rows], {rec.name: live for rec, live in rows})


def _security(rec: cluster.ClusterRecord) -> str:
    """How the frontend is reached: plaintext, TLS, or mTLS with JWT roles."""
    if not cluster.frontend_tls(rec):
        return ""
    if rec.mtls:
        return f" (mTLS + JWT roles; admin profile {cluster.admin_profile(rec.name)})"
    return " (TLS)"


def _print(
    records: list[cluster.ClusterRecord], live: dict[str, dict[str, bool]] | None = None
) -> None:
    """One block per cluster, so long URLs and DSNs are never cut to fit a table."""
    for rec in records:
        procs = live.get(rec.name, {}) if live else {r: True for r in rec.pids}
        pids = ", ".join(f"{r}:{rec.pids[r]}{'' if ok else ' (dead)'}" for r, ok in procs.items())
        console.print(f"[bold]{rec.name}[/bold] ({rec.backend})", highlight=False)
        for label, value in (
            ("frontend", f"{rec.frontend}{_security(rec)}"),
            ("UI", rec.ui_url or "-"),
            ("metrics", rec.metrics_url),
            ("postgres", rec.dsn(masked=True)),
            ("namespaces", ", ".join(rec.namespaces) or "-"),
            ("processes", pids or "stopped"),
        ):
            console.print(f"  {label:<11}{value}", highlight=False, soft_wrap=True)

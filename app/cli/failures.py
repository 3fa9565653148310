"""`haul failures ...`: the failure inbox, from the terminal."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import cast

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError

from app.cli.db import resolve_dsn
from app.platform.failures import GROUP_KEYS, FailureFilter, FailureStore, GroupKey

app = typer.Typer(
    help="The failure inbox: summary, list, show, poll, redrive, resolve and reopen.",
    no_args_is_help=True,
)
console = Console()

CLUSTER = typer.Option(None, help="Local cluster (database and Temporal profile).")
TYPE = typer.Option(None, "--type", help="Only this workflow type.")
TEAM = typer.Option(None, "--team", help="Only this owner team.")
QUEUE = typer.Option(None, "--task-queue", help="Only this task queue.")
FINGERPRINT = typer.Option(None, "--fingerprint", help="Only this cause (see `summary`).")
HOURS = typer.Option(None, "--hours", help="Only failures of the last N hours.")
ALL = typer.Option(False, "--all", help="Include resolved failures.")


def _filter(
    all_: bool,
    workflow_type: str | None,
    team: str | None,
    queue: str | None,
    fingerprint: str | None,
    hours: float | None,
) -> FailureFilter:
    return FailureFilter(
        status=None if all_ else "open",
        workflow_type=workflow_type,
        owner_team=team,
        task_queue=queue,
        fingerprint=fingerprint,
        since=datetime.now(UTC) - timedelta(hours=hours) if hours else None,
    )


async def _client(cluster: str | None) -> Client:
    from app.platform.client import connect
    from app.stack import targets

    target = targets.resolve(cluster)
    return await connect(target.profile, config_file=target.config_file)


def _cluster_name(cluster: str | None) -> str:
    return cluster or "default"


@app.command("summary")
def summary(
    cluster: str | None = CLUSTER,
    by: str = typer.Option("fingerprint", help=f"Group by one of: {', '.join(GROUP_KEYS)}."),
    all_: bool = ALL,
    workflow_type: str | None = TYPE,
    team: str | None = TEAM,
    queue: str | None = QUEUE,
    hours: float | None = HOURS,
) -> None:
    """Count failures per group (cause, type, team, queue or status), biggest first."""
    if by not in GROUP_KEYS:
        raise typer.BadParameter(f"--by {by!r}: choose one of {', '.join(GROUP_KEYS)}")
    filt = _filter(all_, workflow_type, team, queue, None, hours)
    groups = FailureStore(resolve_dsn(cluster)).summary(filt, by=cast(GroupKey, by))
    table = Table(by, "count", "type", "sample message", "last seen", title="failures by " + by)
    for g in groups:
        table.add_row(
            g.key,
            str(g.count),
            g.error_type,
            g.sample_message[:70],
            g.last_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    console.print(table)


@app.command("list")
def list_(
    cluster: str | None = CLUSTER,
    all_: bool = ALL,
    workflow_type: str | None = TYPE,
    team: str | None = TEAM,
    queue: str | None = QUEUE,
    fingerprint: str | None = FINGERPRINT,
    hours: float | None = HOURS,
    limit: int = typer.Option(50, help="Rows per page."),
    page: int = typer.Option(1, help="Page number, from 1."),
) -> None:
    """Show stored failures, newest first. Changes nothing."""
    filt = _filter(all_, workflow_type, team, queue, fingerprint, hours)
    rows = FailureStore(resolve_dsn(cluster)).list(filt, limit=limit, offset=(page - 1) * limit)
    table = Table("id", "workflow ID", "type", "status", "error", "failed at", "state")
    for f in rows:
        table.add_row(
            str(f.id),
            f.workflow_id,
            f.workflow_type,
            f.close_status,
            f"{f.error_type}: {f.error_message[:60]}",
            f.failed_at.strftime("%Y-%m-%d %H:%M:%S"),
            f.status + (" (redriven)" if f.redrive_run_id else ""),
        )
    console.print(table)


@app.command("show")
def show(failure_id: int, cluster: str | None = CLUSTER) -> None:
    """One failure with its arguments, stack, notes and redrives. Changes nothing."""
    store = FailureStore(resolve_dsn(cluster))
    f = store.get(failure_id)
    table = Table("field", "value", title=f"failure {f.id}", show_header=False)
    for name in (
        "cluster",
        "namespace",
        "workflow_type",
        "workflow_id",
        "run_id",
        "task_queue",
        "owner_team",
        "close_status",
        "status",
        "error_type",
        "error_message",
        "fingerprint",
        "attempt",
        "parent_workflow_id",
        "parent_run_id",
        "failed_at",
        "notes",
    ):
        table.add_row(name, str(getattr(f, name) if getattr(f, name) is not None else "-"))
    table.add_row("arguments", json.dumps(f.arguments, indent=2))
    console.print(table)
    if f.failure_stack:
        console.print("[bold]stack[/bold]\n" + f.failure_stack, markup=True, highlight=False)
    for r in store.redrives(f.id):
        console.print(f"redrive {r.id}: {r.mode} run {r.new_run_id}: {r.outcome}")


@app.command("poll")
def poll(cluster: str | None = CLUSTER) -> None:
    """One pass of the poller: record runs closed as failed, timed out, terminated or
    cancelled since the high-water mark, and stuck open runs; follow open redrives."""
    from app.platform.discovery import discovered_task_queues
    from app.platform.failure_poller import Poller
    from app.platform.redrive import follow_redrives

    async def go() -> tuple[int, int, list[str], int]:
        store = FailureStore(resolve_dsn(cluster))
        client = await _client(cluster)
        teams = {q: ",".join(sorted(t)) for q, t in discovered_task_queues().items()}
        res = await Poller(client, store, cluster=_cluster_name(cluster), teams=teams).poll_once()
        return res.listed, res.recorded, res.errors, await follow_redrives(client, store)

    listed, recorded, errors, followed = asyncio.run(go())
    console.print(f"listed {listed} run(s), recorded {recorded} new; {followed} redrive(s) closed")
    for err in errors:
        console.print(f"[yellow]could not read[/yellow] {err}")
    if errors:
        raise typer.Exit(1)


@app.command("redrive")
def redrive_(
    failure_id: int | None = typer.Argument(None, help="The failure to redrive."),
    cluster: str | None = CLUSTER,
    mode: str = typer.Option(
        "rerun",
        "--mode",
        help="rerun: start the workflow again under its ID with its original input. "
        "reset: Temporal's reset of the failed run, keeping its history up to a workflow task.",
    ),
    reset_to: str = typer.Option(
        "last", "--reset-to", help="Reset mode: to the first or last completed workflow task."
    ),
    exclude_signals: bool = typer.Option(
        False,
        "--exclude-signals",
        help="Reset mode: do not re-apply the signals and updates that came after that task.",
    ),
    workflow_type: str | None = TYPE,
    team: str | None = TEAM,
    queue: str | None = QUEUE,
    fingerprint: str | None = FINGERPRINT,
    hours: float | None = HOURS,
    filter_: bool = typer.Option(
        False, "--filter", help="Redrive open failures matching the filter options, oldest first."
    ),
    rate: float = typer.Option(5.0, "--rate", help="Bulk: at most this many redrives a second."),
    limit: int = typer.Option(100, "--limit", help="Bulk: at most this many redrives."),
) -> None:
    """Run a failed workflow again (one by ID, or a batch by --filter) and link each new run.

    Starts new runs on the cluster. A failure with a running or completed redrive is left
    alone, and a run that succeeded is never run again."""
    from app.platform.redrive import BulkRedrive, RedriveOptions, redrive, redrive_matching, why

    if (failure_id is None) == (not filter_):
        raise typer.BadParameter("give a failure ID, or --filter with filter options, not both")
    if mode not in ("rerun", "reset"):
        raise typer.BadParameter(f"--mode {mode!r}: choose rerun or reset")
    if reset_to not in ("first", "last"):
        raise typer.BadParameter(f"--reset-to {reset_to!r}: choose first or last")
    if mode == "rerun" and (exclude_signals or reset_to != "last"):
        raise typer.BadParameter("--reset-to and --exclude-signals apply only to --mode reset")
    if rate <= 0:
        raise typer.BadParameter(f"--rate {rate}: must be above 0")
    if limit < 1:
        raise typer.BadParameter(f"--limit {limit}: must be at least 1")
    options = RedriveOptions.model_validate(
        {"mode": mode, "reset_to": reset_to, "reapply_signals": not exclude_signals}
    )

    async def go() -> BulkRedrive:
        from app.platform.client import HaulClient
        from app.stack import targets

        store = FailureStore(resolve_dsn(cluster))
        haul = await HaulClient.connect(targets.resolve(cluster))
        try:
            if failure_id is None:
                filt = _filter(False, workflow_type, team, queue, fingerprint, hours)
                return await redrive_matching(
                    haul.router, store, filt, options, per_second=rate, limit=limit
                )
            run_id = await redrive(haul.router, store, failure_id, options)
            return BulkRedrive(redriven=[failure_id], runs={failure_id: run_id})
        finally:
            await haul.close()

    try:
        result = asyncio.run(go())
    except (ValueError, WorkflowAlreadyStartedError) as exc:
        console.print(f"[red]failure {failure_id} not redriven:[/red] {escape(why(exc))}")
        raise typer.Exit(1) from exc
    table = Table("failure", "result", "new run / reason", title=f"redrive ({options.mode})")
    for fid in result.redriven:
        table.add_row(str(fid), "[green]redriven[/green]", result.runs[fid])
    for refused in result.refused:
        table.add_row(str(refused.failure_id), "[yellow]refused[/yellow]", escape(refused.reason))
    console.print(table)
    console.print(
        f"{len(result.redriven)} redriven, {len(result.refused)} refused; "
        "`haul failures poll` follows each new run to its outcome"
    )
    if failure_id is None and not result.redriven and result.refused:
        raise typer.Exit(1)


@app.command("resolve")
def resolve(
    failure_id: int,
    cluster: str | None = CLUSTER,
    note: str = typer.Option("", help="Why it is resolved."),
    reopen: bool = typer.Option(False, "--reopen", help="Open it again instead."),
) -> None:
    """Mark a failure resolved (or reopen it), with a note."""
    FailureStore(resolve_dsn(cluster)).set_status(
        failure_id, "open" if reopen else "resolved", note
    )
    console.print(f"failure {failure_id} {'reopened' if reopen else 'resolved'}")


@app.command("reopen")
def reopen(
    failure_id: int,
    cluster: str | None = CLUSTER,
    note: str = typer.Option("", help="Why it is open again."),
) -> None:
    """Open a resolved failure again, appending the note; an open one is left as it is."""
    if FailureStore(resolve_dsn(cluster)).reopen(failure_id, note):
        console.print(f"failure {failure_id} reopened")
    else:
        console.print(f"failure {failure_id} was already open; nothing changed")

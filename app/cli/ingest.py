"""`haul ingest ...`: send carrier files through the parcel pipeline."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from app.core.database import Database
from app.domains.parcel.models import IngestProgress, IngestSummary, PipelineSettings

app = typer.Typer(help="Ingest carrier files (EDI 210, UPS and FedEx billing CSV).",
                  no_args_is_help=True)
console = Console()


def summary_table(summary: IngestSummary, title: str = "parcel ingestion") -> Table:
    table = Table(title=title, show_header=True)
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("file", summary.file_name or summary.content_hash[:16])
    table.add_row("format", summary.format)
    table.add_row("outcome", summary.outcome)
    table.add_row("invoices", str(summary.invoices))
    table.add_row("invoices normalized", str(summary.invoices_ok))
    table.add_row("charge groups", str(summary.charge_groups))
    table.add_row("charges", str(summary.charges))
    table.add_row("charges total", summary.charges_total)
    table.add_row("discrepancies queued", str(summary.discrepancies))
    table.add_row("failures", str(summary.failures))
    return table


def print_summary(console: Console, summary: IngestSummary, *, again: bool = False) -> None:
    title = "parcel ingestion (already ingested: nothing ran)" if again else "parcel ingestion"
    console.print(summary_table(summary, title))
    if summary.error:
        console.print(f"[red]rejected:[/red] {summary.error}")
    for failure in summary.failure_reasons:
        console.print(
            f"[yellow]invoice #{failure.index} {failure.invoice_number}[/yellow] "
            f"{failure.error_type}: {failure.message}"
        )
    if summary.failures > len(summary.failure_reasons):
        console.print(
            f"... and {summary.failures - len(summary.failure_reasons)} more; "
            "`haul failures list` shows every one"
        )
    for issue in summary.envelope_issues:
        console.print(f"[yellow]envelope:[/yellow] {issue}")


@app.command("parcel")
def parcel(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True,
                                help="The carrier file: X12 210, UPS or FedEx billing CSV."),
    carrier: str | None = typer.Option(None, help="Carrier name or SCAC (ups, fedex, usps ...)."),
    cluster: str | None = typer.Option(
        None, help="Local cluster (its envconfig profile, database and blob dir); default: "
        "TEMPORAL_* / profile with HAUL_DATABASE_URL and HAUL_BLOB_DIR."),
    lenient_envelope: bool = typer.Option(
        False, help="Accept envelope count and control-number mismatches (reported, not fatal)."),
    max_concurrency: int | None = typer.Option(
        None, help="Children (packed runs of invoices, large invoices) at once (<= 1000)."),
    audit_batch_size: int | None = typer.Option(None, help="Charge groups per audit activity."),
) -> None:
    """Ingest one carrier file: one workflow per file, packed runs of its small invoices.

    The workflow ID is the file's SHA-256, and a Postgres idempotency row makes the same file
    sent twice one run (the second prints the first's summary). Writes the invoices, audit
    findings and review-queue items to Postgres and the file to the blob store.
    """
    from app.core.blobstore import open_store
    from app.domains.parcel.starter import ingest
    from app.formats.csv_layouts import resolve_carrier
    from app.platform.client import HaulClient

    if carrier:
        resolve_carrier(carrier)  # an unknown code fails here, before anything is sent
    from app.stack import targets

    target = targets.resolve(cluster)
    overrides = {"max_concurrency": max_concurrency, "audit_batch_size": audit_batch_size}
    settings = PipelineSettings.from_env(**{k: v for k, v in overrides.items() if v is not None})

    async def go() -> tuple[IngestSummary, bool]:
        client = await HaulClient.connect(target)
        database = Database(target.database_url)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[detail]}"), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task(f"ingesting {file.name}", total=None, detail="")

            def show(p: IngestProgress) -> None:
                bar.update(task, total=p.invoices or None, completed=p.done + p.failed,
                           detail=f"{p.phase}: {p.running} running, {p.failed} failed, "
                                  f"run {p.run}")

            try:
                result = await ingest(client, database, open_store(target.blob_dir), file,
                                      on_progress=show, carrier=carrier,
                                      strict_envelope=not lenient_envelope, settings=settings)
            finally:
                database.close()
                await client.close()
            done = result[0]
            bar.update(task, total=done.invoices, completed=done.invoices,
                       detail=f"{done.outcome}: {done.failures} failed")
            return result

    try:
        summary, ran = asyncio.run(go())
    except Exception as err:
        from temporalio.client import WorkflowFailureError

        if isinstance(err, WorkflowFailureError):
            cause = err.cause
            console.print(f"[red]the file was not ingested:[/red] "
                          f"{getattr(cause, 'message', cause)}")
            raise typer.Exit(1) from None
        raise
    print_summary(console, summary, again=not ran)

"""`haul run`: the main job on the embedded default.

Dev stack, migrations, sample contracts, a worker, then a shipped carrier file through the
parcel pipeline, with its progress and summary; then it serves until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from importlib import resources

import typer
from rich.console import Console

from app.cli.ingest import print_summary
from app.core.blobstore import open_store
from app.core.database import Database
from app.core.procs import pid_alive
from app.core.settings import CliSettings
from app.domains import app_database
from app.domains.parcel.models import IngestProgress, IngestSummary
from app.domains.parcel.starter import ingest
from app.platform.client import HaulClient
from app.stack import cluster, targets
from app.stack.workers import start_worker, stop_worker

SAMPLE_FILE = "edi210_sample.edi"
console = Console()


def run(
    name: str = typer.Option("default", help="Local dev cluster to run on."),
    exit_when_done: bool = typer.Option(
        False, "--exit-when-done", help="Stop the worker and cluster once the sample is done."
    ),
    headless: bool = typer.Option(False, help="Do not start the Web UI."),
) -> None:
    """The main job on the embedded default: dev stack, migrations, workers, a sample workload.

    Starts (or reuses) the dev cluster, applies migrations, starts a worker process, runs the
    sample, prints what happened, then keeps serving until Ctrl-C.
    """
    run_main_job(name, exit_when_done=exit_when_done, headless=headless)


def run_main_job(name: str, *, exit_when_done: bool, headless: bool) -> None:
    """Dev stack, migrations, sample contracts, a worker, then a shipped carrier file through
    the parcel pipeline, with its progress and summary."""
    with console.status("starting the dev cluster (Temporal dev server + Postgres) ..."):
        rec = cluster.up(name, "dev", headless=headless)
    target = targets.for_cluster(rec)
    applied, contracts = app_database.prepare(target.database_url)
    console.print(
        f"cluster {rec.name!r} up; {len(applied)} migration(s) applied; "
        f"{contracts} sample contract rates loaded"
    )
    with console.status("starting the worker ..."):
        worker_pid = start_worker(rec)

    sample = resources.files("app.formats").joinpath("samples", SAMPLE_FILE)

    async def workload() -> tuple[IngestSummary, bool]:
        client = await HaulClient.connect(target)
        database = Database(target.database_url)
        try:
            with (
                resources.as_file(sample) as path,
                console.status(f"ingesting {SAMPLE_FILE} ...") as status,
            ):

                def show(p: IngestProgress) -> None:
                    status.update(
                        f"ingesting {SAMPLE_FILE}: {p.done + p.failed}/{p.invoices} invoices, "
                        f"{p.running} running ({p.phase})"
                    )

                return await ingest(
                    client, database, open_store(target.blob_dir), path,
                    on_progress=show,
                )
        finally:
            database.close()
            await client.close()

    try:
        summary, ran = asyncio.run(workload())
        print_summary(console, summary, again=not ran)
        if rec.ui_url:
            console.print(
                f"Temporal UI: {rec.ui_url}/namespaces/{target.namespace}/workflows"
            )
        console.print(f"frontend {rec.frontend}  metrics {rec.metrics_url}")
        console.print(
            "ingest another file with `haul ingest parcel FILE --cluster "
            f"{rec.name}` while this runs"
        )
        if exit_when_done:
            return
        console.print("serving; press Ctrl-C to stop the worker and the cluster")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            while not stop.is_set() and pid_alive(worker_pid):
                stop.wait(1)
        except KeyboardInterrupt:
            pass
    finally:
        stop_worker(rec)
        if exit_when_done or not CliSettings().keep_cluster:
            cluster.down(rec.name)

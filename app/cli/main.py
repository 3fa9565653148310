"""`haul`: the runbook surface. Verbs under nouns; every command says what it changes."""

from __future__ import annotations

import os
import sys

import click
import typer
from rich.console import Console

from app.cli import api, db, failures, ingest, loadtest, migrate, run, stack, worker
from app.core.settings import CliSettings, SettingsError

app = typer.Typer(
    help="haul: self-hosted Temporal platform: stacks, workers, ingestion, migration, load tests.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(stack.app, name="stack")
app.add_typer(db.app, name="db")
app.add_typer(loadtest.app, name="loadtest")
app.command("cost")(loadtest.cost)
app.add_typer(failures.app, name="failures")
app.add_typer(ingest.app, name="ingest")
app.add_typer(migrate.app, name="migrate")
app.command("worker")(worker.worker)
app.command("api")(api.api)
app.command("run")(run.run)
console = Console()


def main() -> None:
    """Entry point: run the CLI, then leave without interpreter teardown.

    A process that used a temporalio client can abort during interpreter teardown next to
    grpcio (exit 134); once the command has finished and output is flushed, `os._exit` keeps
    a clean run's exit code.
    """
    code = 0
    try:
        debug = CliSettings().debug
    except SettingsError as exc:
        console.print(f"[red]error:[/red] {exc}")
        sys.stdout.flush()
        os._exit(2)
    try:
        # Outside standalone mode click returns a command's exit code instead of exiting.
        returned = app(standalone_mode=False)
        code = returned if isinstance(returned, int) else 0
    except (typer.Exit, click.exceptions.Exit) as exc:
        code = exc.exit_code
    except (typer.Abort, click.exceptions.Abort):
        console.print("aborted")
        code = 130
    except (typer.TyperException, click.ClickException) as exc:
        # typer bundles its own click; usage errors come from either, with show() and a code.
        exc.show()  # type: ignore[union-attr]
        code = exc.exit_code  # type: ignore[union-attr]
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:  # a clear one-line error, not a traceback, for expected failures
        if debug:
            raise
        console.print(f"[red]error:[/red] {exc}")
        code = 1
    from app.platform import tracing

    tracing.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

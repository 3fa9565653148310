"""`haul`: the runbook surface. Verbs under nouns; every command says what it changes."""

from __future__ import annotations

import asyncio
import os
import sys

import click
import typer
from rich.console import Console

from app.db import commands as db_commands
from app.domains.parcel import commands as parcel_commands
from app.loadtest import commands as loadtest_commands
from app.platform import commands as platform_commands
from app.stack import commands as stack_commands

app = typer.Typer(
    help="haul: self-hosted Temporal platform: stacks, workers, ingestion, migration, load tests.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(stack_commands.app, name="stack")
app.add_typer(db_commands.app, name="db")
app.add_typer(loadtest_commands.app, name="loadtest")
app.command("cost")(loadtest_commands.cost)
app.add_typer(platform_commands.app, name="failures")
app.add_typer(parcel_commands.app, name="ingest")
console = Console()


@app.command("worker")
def worker(
    task_queue: list[str] = typer.Option(
        [], "--task-queue", "-q", help="Task queue to serve (repeatable); default: all discovered."
    ),
    cluster: str | None = typer.Option(
        None, help="Local cluster to serve (its envconfig profile); default: TEMPORAL_* / profile."
    ),
) -> None:
    """Run a worker for the discovered workflows and activities until SIGTERM.

    Connection comes from envconfig (temporal.toml profile and TEMPORAL_* variables). On
    SIGTERM it stops polling and lets in-flight activities finish within
    HAUL_GRACEFUL_SHUTDOWN_SECONDS. Serves /healthz and /metrics on HAUL_WORKER_HEALTH_PORT.
    """
    from app.platform import logs
    from app.platform.worker import run_worker

    logs.configure()
    config_file = None
    if cluster:
        from app.stack.cluster import profile_file

        config_file = str(profile_file())
    asyncio.run(
        run_worker(profile=cluster, config_file=config_file, task_queues=task_queue or None)
    )


@app.command("run")
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
    from app.stack import runner

    runner.run_main_job(name, exit_when_done=exit_when_done, headless=headless, console=console)


def main() -> None:
    """Entry point: run the CLI, then leave without interpreter teardown.

    A process that used a temporalio client can abort during interpreter teardown next to
    grpcio (exit 134); once the command has finished and output is flushed, `os._exit` keeps
    a clean run's exit code.
    """
    code = 0
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
        if os.environ.get("HAUL_DEBUG"):
            raise
        console.print(f"[red]error:[/red] {exc}")
        code = 1
    from app.platform import tracing

    tracing.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

"""Capture fresh replay histories: `python -m tests.replay.capture [SCENARIO ...]`.

Boots a throwaway dev cluster, serves every discovered task queue in-process (plus the
pre-patch ledger's own queue), runs each scenario once, and writes every run of it, following
continue-as-new, to tests/replay/histories/<SCENARIO>.run<N>.json.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path

from temporalio.client import Client, WorkflowHistory

from app.core.database import Database
from app.core.migrate import migrate
from app.core.settings import Settings
from app.domains.sample import DOMAIN as SAMPLE
from app.platform.client import HaulClient, connect
from app.platform.discovery import Discovered, TaskQueueRegistration, discover
from app.platform.migration_state import MigrationStore
from app.platform.router import ClusterRouter
from app.platform.worker import build_workers
from app.stack import cluster, targets
from tests.replay import prepatch
from tests.replay.scenarios import HANDOFF_ALIAS, SCENARIOS

HISTORIES = Path(__file__).parent / "histories"


def _with_prepatch_queue(found: Discovered) -> Discovered:
    """The pre-patch ledger on its own queue, with the sample activities it calls."""
    sample = found.queues[SAMPLE.task_queue]
    found.queues[prepatch.TASK_QUEUE] = TaskQueueRegistration(
        prepatch.TASK_QUEUE, [prepatch.LedgerBeforeCarryPatch], list(sample.activity_classes)
    )
    return found


async def every_run(
    client: Client, workflow_id: str, run_id: str | None = None
) -> list[WorkflowHistory]:
    """The histories of one execution chain, first run first: from the first execution run ID
    of `run_id` (default: the latest run), along each run's ContinuedAsNew event."""
    latest = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    started = latest.events[0].workflow_execution_started_event_attributes
    run_id = started.first_execution_run_id
    runs = []
    while run_id:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        runs.append(history)
        last = history.events[-1]
        run_id = (
            last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
            if last.HasField("workflow_execution_continued_as_new_event_attributes")
            else ""
        )
    return runs


def write_runs(name: str, runs: list[WorkflowHistory]) -> list[Path]:
    """Replace the scenario's committed files with one file per run."""
    for old in [HISTORIES / f"{name}.json", *HISTORIES.glob(f"{name}.run*.json")]:
        old.unlink(missing_ok=True)
    paths = [HISTORIES / f"{name}.run{n}.json" for n in range(1, len(runs) + 1)]
    for path, history in zip(paths, runs, strict=True):
        path.write_text(history.to_json())
    return paths


async def capture(names: list[str], cluster_name: str) -> list[Path]:
    target = targets.resolve(cluster_name)
    client = await connect(target.profile, config_file=target.config_file)
    settings = Settings(database_url=target.database_url, blob_dir=target.blob_dir)
    # Activities route through a router that reads the migration state (none: single) and can
    # reach this cluster under a second name too, so an entity can hand off to "itself".
    database = Database(target.database_url)
    migrate(target.database_url)
    router = ClusterRouter(
        {cluster_name: client, HANDOFF_ALIAS: client},
        MigrationStore(database),
        cluster=cluster_name,
    )
    await router.open()
    workers = build_workers(
        client, _with_prepatch_queue(discover()), settings, haul=HaulClient(router)
    )
    written = []
    async with asyncio.TaskGroup() as tg:
        for w in workers:
            tg.create_task(w.run())
        try:
            haul = HaulClient(client)
            for name in names:
                handle = await SCENARIOS[name](haul, f"replay-{uuid.uuid4().hex[:8]}")
                await handle.result()
                written += write_runs(name, await every_run(client, handle.id, handle.run_id))
        finally:
            for w in workers:
                await w.shutdown()
            await router.close()
            database.close()
    return written


def main() -> None:
    names = sys.argv[1:] or sorted(SCENARIOS)
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        sys.exit(f"unknown scenario(s) {unknown}; known: {sorted(SCENARIOS)}")
    HISTORIES.mkdir(exist_ok=True)
    rec = cluster.up("replay-capture", "dev", headless=True)
    try:
        for path in asyncio.run(capture(names, rec.name)):
            print(f"wrote {path}")
    finally:
        cluster.down(rec.name, purge=True)


if __name__ == "__main__":
    main()

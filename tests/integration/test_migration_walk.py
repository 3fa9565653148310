"""`haul migrate` on two dev clusters: the whole phase walk with a real `haul worker` process
following the state (HAUL_MIGRATION), the transitions it must refuse, and an abort from
routing that sends new work back to the old cluster."""

from __future__ import annotations

import asyncio
import time

from typer.testing import CliRunner, Result

from app.cli.main import app
from app.domains.sample.models import GreetingInput
from app.domains.sample.workflows import GreetingWorkflow
from app.platform.client import HaulClient
from app.platform.history import run_ids
from app.platform.migration_state import MigrationStore
from app.platform.phases import MigrationState, Phase, Step
from app.stack import targets
from app.stack.registry import ClusterRecord
from tests.integration.migration_clusters import polled_on, wait_until

OLD, NEW = "mw-old", "mw-new"


def haul(*args: str) -> Result:
    return CliRunner().invoke(app, ["migrate", *args, "--cluster", OLD])


def refused(result: Result, why: str) -> None:
    assert result.exit_code != 0, result.output
    assert why in str(result.exception), (result.exception, result.output)


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.exception, result.output)
    return result.output


def polled_on_new() -> bool:
    return polled_on(NEW)


def start_greeting(name: str, work_seconds: float = 0.0) -> tuple[str, dict[str, int]]:
    """Start a task through a migration-following HaulClient; where its runs landed."""

    async def go() -> tuple[str, dict[str, int]]:
        target = targets.resolve(OLD, migration=True)
        client = await HaulClient.connect(target, refresh_seconds=0.2)
        try:
            handle = await client.start(
                GreetingWorkflow.run, GreetingInput(name=name, work_seconds=work_seconds), name
            )
            landed: dict[str, int] = {}
            deadline = time.monotonic() + 120
            # Visibility trails the start by a moment.
            while sum(landed.values()) == 0 and time.monotonic() < deadline:
                for n, c in client.router.clients.items():
                    landed[n] = len(await run_ids(c, handle.id))
                await asyncio.sleep(0.2)
            return handle.id, landed
        finally:
            await client.close()

    return asyncio.run(go())


def state(store: MigrationStore) -> MigrationState:
    found = store.read()
    assert found is not None
    return found


def test_route_is_refused_while_the_new_cluster_has_no_pollers(
    records: dict[str, ClusterRecord], store: MigrationStore
) -> None:
    """First in the module: the server remembers pollers for minutes, so this runs before
    any worker has polled the new cluster."""
    assert "route: not yet" in ok(haul("plan", "--to", NEW))
    ok(haul("start", "--to", NEW, "--yes"))
    refused(haul("route", "--yes"), "no worker polls loadgen (workflow)")
    refused(haul("route", "--yes"), f"sample (activity) on {NEW!r}")
    assert state(store).phase is Phase.DUAL
    ok(haul("abort", "--yes"))
    assert state(store) == MigrationState(old=OLD, version=2)


def test_the_whole_walk_through_the_cli_with_refusals(
    records: dict[str, ClusterRecord], store: MigrationStore, worker: int
) -> None:
    assert "single" in ok(haul("status"))
    refused(haul("route", "--yes"), "routing follows dual")
    refused(haul("finish", "--yes"), "finish follows drained")
    out = ok(haul("start", "--to", NEW, "--yes"))
    assert "will change: single -> dual" in out and "dual in effect" in out
    refused(haul("start", "--to", NEW, "--yes"), "already under way")
    # The worker follows the state: it polls the new cluster too, and then routing may begin.
    wait_until(polled_on_new, f"the worker polling {NEW}")
    _, landed = start_greeting(f"before-{time.time_ns()}", work_seconds=20)
    assert landed == {OLD: 1, NEW: 0}
    out = ok(haul("route", "--yes"))
    assert "routing:lookup in effect" in out
    assert state(store).stage == "routing:lookup"
    _, landed = start_greeting(f"after-{time.time_ns()}")
    assert landed == {OLD: 0, NEW: 1}
    # The long task still runs on the old cluster: draining begins, drained is refused.
    refused(haul("drain", "--yes"), f"still open on {OLD!r}")
    assert state(store).phase is Phase.DRAINING
    out = ok(haul("status"))
    assert "draining" in out and "GreetingWorkflow" in out and "drain estimate" in out
    assert "drained in effect" in ok(haul("drain", "--yes", "--wait", "--poll", "0.5"))
    refused(haul("abort", "--yes"), "the old cluster is drained")
    ok(haul("finish", "--yes"))
    assert state(store) == MigrationState(old=NEW, version=state(store).version)
    stages = [h["to_phase"] for h in store.history()]
    assert stages == [
        "dual",
        "routing:guard",
        "routing:claim",
        "routing:lookup",
        "draining",
        "drained",
        "single",
    ]


def test_an_abort_from_routing_sends_new_work_back_to_the_old_cluster(
    records: dict[str, ClusterRecord], store: MigrationStore, worker: int
) -> None:
    ok(haul("start", "--to", NEW, "--yes"))
    wait_until(polled_on_new, f"the worker polling {NEW}")
    ok(haul("route", "--yes"))
    _, landed = start_greeting(f"routed-{time.time_ns()}")
    assert landed == {OLD: 0, NEW: 1}
    out = ok(haul("abort", "--yes"))
    assert "routing:both_new" in out and "routing:both_old" in out
    after = state(store)
    assert (after.old, after.new, after.step) == (NEW, OLD, Step.LOOKUP)
    _, landed = start_greeting(f"aborted-{time.time_ns()}")
    assert landed == {OLD: 1, NEW: 0}

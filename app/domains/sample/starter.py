"""The sample workload that `haul run` drives: greetings and one entity's events."""

from __future__ import annotations

import asyncio
import uuid

from app.domains.sample.models import GreetingInput
from app.domains.sample.workflows import GreetingWorkflow, LedgerEntityWorkflow
from app.platform.client import HaulClient
from app.platform.retry_on_signal import EntityEvent, EntityInput


async def run_sample(client: HaulClient, names: list[str]) -> list[tuple[str, str, str]]:
    """Start one greeting per name and ten events on one entity; return (id, kind, result)."""
    run = uuid.uuid4().hex[:8]
    handles = [
        await client.start(GreetingWorkflow.run, GreetingInput(name=name), f"{name}-{run}")
        for name in names
    ]
    entity = f"sample-entity-{run}"
    for i in range(10):
        entity_handle = await client.signal_with_start(
            LedgerEntityWorkflow.run,
            EntityInput(entity_key=entity),
            entity,
            LedgerEntityWorkflow.on_event,
            EntityEvent(event_id=f"{entity}-{i}"),
        )
    rows = []
    for handle in handles:
        result = await handle.result()
        rows.append((handle.id, "greeting", result.greeting))
    entity_result = await entity_handle.result()
    rows.append((entity_handle.id, "entity", f"processed {entity_result.processed} events"))
    return rows


def main() -> None:
    """Run the sample against the cluster that envconfig points at."""
    from app.platform import tracing
    from app.platform.client import connect

    async def go() -> None:
        client = HaulClient(await connect())
        for row in await run_sample(client, ["world"]):
            print(*row)

    asyncio.run(go())
    tracing.shutdown()


if __name__ == "__main__":
    main()

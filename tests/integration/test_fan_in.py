"""Fan-in loses nothing: every event sent to an entity is processed by exactly one run."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter

import pytest
from temporalio.client import Client

from app.domains.sample.models import LedgerBatch
from app.domains.sample.workflows import LedgerEntityWorkflow
from app.platform.client import HaulClient
from app.platform.history import run_ids, scheduled_activity_inputs
from app.platform.retry_on_signal import EntityEvent, EntityInput
from tests.integration.workers import sample_worker


async def processed_event_ids(client: Client, workflow_ids: list[str]) -> Counter[str]:
    """Event IDs in every process_ledger_batch input of every run, read from histories."""
    seen: Counter[str] = Counter()
    for wf_id in workflow_ids:
        # Visibility is eventually consistent: wait until every run is listed and closed (a
        # busy machine may take a while; give up loudly rather than count a partial list).
        deadline = time.monotonic() + 120
        while True:
            runs = await run_ids(client, wf_id)
            statuses = [await client.get_workflow_handle(wf_id, run_id=r).describe() for r in runs]
            if runs and all(s.close_time is not None for s in statuses):
                break
            assert time.monotonic() < deadline, f"{wf_id}: runs {runs} not all listed closed"
            await asyncio.sleep(0.2)
        for run in runs:
            for batch in await scheduled_activity_inputs(
                client, wf_id, run, "process_ledger_batch", LedgerBatch
            ):
                seen.update(batch.event_ids)
    return seen


async def carried_events(client: Client, workflow_ids: list[str]) -> int:
    """Events handed to a continued run as pending, over every run of these workflows."""
    total = 0
    for wf_id in workflow_ids:
        for run in await run_ids(client, wf_id):
            handle = client.get_workflow_handle(wf_id, run_id=run)
            async for event in handle.fetch_history_events():
                if event.HasField("workflow_execution_started_event_attributes"):
                    payload = event.workflow_execution_started_event_attributes.input.payloads[0]
                    total += len(json.loads(payload.data).get("pending", []))
                    break
    return total


async def test_500_events_on_10_entities_each_processed_exactly_once(
    client: Client, haul_client: HaulClient, task_queue: str
) -> None:
    prefix = uuid.uuid4().hex[:8]
    entities = [f"fan-{prefix}-{i}" for i in range(10)]
    sent = [f"{entities[n % 10]}:{n}" for n in range(500)]

    async def send(event_id: str) -> None:
        entity = event_id.split(":")[0]
        await haul_client.signal_with_start(
            LedgerEntityWorkflow.run,
            # A low history limit makes every entity continue as new while events wait.
            EntityInput(entity_key=entity, state={"work_seconds": 0.3}, history_limit=30),
            entity,
            LedgerEntityWorkflow.on_event,
            EntityEvent(event_id=event_id),
            task_queue=task_queue,
        )

    async with sample_worker(client, task_queue):
        sem = asyncio.Semaphore(50)

        async def bounded(event_id: str) -> None:
            async with sem:
                await send(event_id)

        await asyncio.gather(*(bounded(e) for e in sent))
        ids = [haul_client.id_for(LedgerEntityWorkflow.run, e) for e in entities]
        for wf_id in ids:
            # A lost event leaves its entity waiting: fail instead of hanging.
            await asyncio.wait_for(client.get_workflow_handle(wf_id).result(), timeout=120)
        processed = await processed_event_ids(client, ids)

    assert set(processed) == set(sent)
    assert [e for e, n in processed.items() if n > 1] == []
    carried = await carried_events(client, ids)
    assert carried > 0, "no run continued as new with events waiting: the test proves nothing"


@pytest.mark.parametrize("repeat", range(3))
async def test_completion_race_an_activity_signalling_its_own_entity(
    client: Client, haul_client: HaulClient, task_queue: str, repeat: int
) -> None:
    """Each entity's activity signals the entity as its last step; 200 times over."""
    prefix = uuid.uuid4().hex[:8]
    entities = [f"race-{prefix}-{i}" for i in range(200)]
    async with sample_worker(client, task_queue):
        sem = asyncio.Semaphore(50)

        async def one(entity: str) -> None:
            async with sem:
                await haul_client.signal_with_start(
                    LedgerEntityWorkflow.run,
                    EntityInput(entity_key=entity),
                    entity,
                    LedgerEntityWorkflow.on_event,
                    EntityEvent(event_id=f"{entity}-req", kind="echo-request"),
                    task_queue=task_queue,
                )

        await asyncio.gather(*(one(e) for e in entities))
        ids = [haul_client.id_for(LedgerEntityWorkflow.run, e) for e in entities]
        for wf_id in ids:
            # A lost event leaves its entity waiting: fail instead of hanging.
            await asyncio.wait_for(client.get_workflow_handle(wf_id).result(), timeout=120)
        processed = await processed_event_ids(client, ids)

    expected = {f"{e}-req" for e in entities} | {f"{e}-req-echo" for e in entities}
    assert set(processed) == expected
    assert max(processed.values()) == 1


async def test_an_entity_starts_again_after_it_completed(
    client: Client, haul_client: HaulClient, task_queue: str
) -> None:
    """ALLOW_DUPLICATE: the next event after a completed run starts a fresh run, which
    processes it; the first run's event is not processed again."""
    key = f"again-{uuid.uuid4().hex[:8]}"
    async with sample_worker(client, task_queue):
        first = await haul_client.signal_with_start(
            LedgerEntityWorkflow.run,
            EntityInput(entity_key=key),
            key,
            LedgerEntityWorkflow.on_event,
            EntityEvent(event_id=f"{key}-1"),
            task_queue=task_queue,
        )
        await first.result()
        second = await haul_client.signal_with_start(
            LedgerEntityWorkflow.run,
            EntityInput(entity_key=key),
            key,
            LedgerEntityWorkflow.on_event,
            EntityEvent(event_id=f"{key}-2"),
            task_queue=task_queue,
        )
        await second.result()
        assert second.result_run_id != first.result_run_id
        seen = await processed_event_ids(client, [first.id])
    assert seen == Counter({f"{key}-1": 1, f"{key}-2": 1})
    assert len(await run_ids(client, first.id)) == 2

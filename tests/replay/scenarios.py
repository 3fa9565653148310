"""One short run per shipped workflow type, whose history the replay test keeps.

A new workflow type needs an entry here (the replay test refuses a type without a history);
then run `python -m tests.replay.capture` and commit the new file in tests/replay/histories.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from temporalio.client import WorkflowHandle

from app.domains.loadgen.models import NoopInput, TimerInput
from app.domains.loadgen.workflows import NoopActivityWorkflow, TimerWorkflow
from app.domains.sample.models import GreetingInput
from app.domains.sample.workflows import GreetingWorkflow, LedgerEntityWorkflow
from app.platform.client import HaulClient
from app.platform.retry_on_signal import EVENT_SIGNAL, EntityEvent, EntityInput

Scenario = Callable[[HaulClient, str], Awaitable[WorkflowHandle[Any, Any]]]


async def _greeting(client: HaulClient, ident: str) -> WorkflowHandle[Any, Any]:
    return await client.start(GreetingWorkflow, GreetingInput(name="replay"), ident)


async def _ledger(client: HaulClient, ident: str) -> WorkflowHandle[Any, Any]:
    handle = None
    for i in range(3):
        handle = await client.signal_with_start(
            LedgerEntityWorkflow,
            EntityInput(entity_key=ident),
            ident,
            EVENT_SIGNAL,
            EntityEvent(event_id=f"{ident}-{i}", kind="echo-request" if i == 0 else "event"),
        )
    assert handle is not None
    return handle


async def _noop(client: HaulClient, ident: str) -> WorkflowHandle[Any, Any]:
    return await client.start(NoopActivityWorkflow, NoopInput(tag="replay"), ident)


async def _timer(client: HaulClient, ident: str) -> WorkflowHandle[Any, Any]:
    return await client.start(TimerWorkflow, TimerInput(seconds=0.2), ident)


SCENARIOS: dict[str, Scenario] = {
    "GreetingWorkflow": _greeting,
    "LedgerEntityWorkflow": _ledger,
    "NoopActivityWorkflow": _noop,
    "TimerWorkflow": _timer,
}

"""The haul client: envconfig connections and deterministic-ID starts, signals and queries.

Task workflows start with USE_EXISTING / ALLOW_DUPLICATE_FAILED_ONLY, so a duplicate start
joins the running workflow, a finished one is never run again by accident, and a failed one
can be redriven. Entity workflows (retry_on_signal) use ALLOW_DUPLICATE, so the next event
after a completed run starts a fresh run.

Workflows, signals and queries are named by their methods (`GreetingWorkflow.run`,
`LedgerEntityWorkflow.on_event`), as in temporalio's own client, so mypy checks each input and
the handle knows its result type.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow as wf
from temporalio.client import Client, Interceptor, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.envconfig import ClientConfig
from temporalio.runtime import Runtime
from temporalio.types import (
    MethodAsyncSingleParam,
    MethodSyncOrAsyncNoParam,
    MethodSyncOrAsyncSingleParam,
    ParamType,
    ReturnType,
    SelfType,
)

from app.platform.discovery import task_queue_for
from app.platform.failures import FailureStore
from app.platform.ids import workflow_id
from app.platform.plugin import HaulPlugin

SignalArg = TypeVar("SignalArg")
QueryResult = TypeVar("QueryResult")


async def connect(
    profile: str | None = None,
    *,
    config_file: str | None = None,
    failure_store: FailureStore | None = None,
    interceptors: Sequence[Interceptor] = (),
    runtime: Runtime | None = None,
) -> Client:
    """Connect from an envconfig profile plus TEMPORAL_* variables, as the CLI does.

    Works alike for a local cluster, a self-hosted TLS cluster and Temporal Cloud (API key or
    mTLS): all of that lives in the profile, never in our code. The client carries the haul
    plugin; `failure_store` is where workers built on it record failed workflows.
    """
    config = ClientConfig.load_client_connect_config(profile, config_file=config_file)
    return await Client.connect(
        **config,
        plugins=[HaulPlugin(failure_store)],
        interceptors=list(interceptors),
        runtime=runtime,
    )


def _definition(run: Callable[..., Awaitable[Any]]) -> wf._Definition:
    return wf._Definition.must_from_run_fn(run)


def _task_queue(defn: wf._Definition, task_queue: str | None) -> str:
    return task_queue_for(defn.cls, task_queue)


@dataclass
class HaulClient:
    """Wraps a temporalio Client with haul's ID and policy conventions."""

    client: Client

    def id_for(self, run: Callable[..., Awaitable[Any]], task_identifier: str) -> str:
        """The deterministic ID of `task_identifier`'s run of the workflow whose run method
        is `run`."""
        return workflow_id(_definition(run).name or "", task_identifier)

    async def start(
        self,
        run: MethodAsyncSingleParam[SelfType, ParamType, ReturnType],
        arg: ParamType,
        task_identifier: str,
        *,
        task_queue: str | None = None,
        execution_timeout: timedelta | None = None,
    ) -> WorkflowHandle[SelfType, ReturnType]:
        """Start a task workflow, or join the one already running under the same ID."""
        defn = _definition(run)
        return await self.client.start_workflow(
            run,
            arg,
            id=self.id_for(run, task_identifier),
            task_queue=_task_queue(defn, task_queue),
            execution_timeout=execution_timeout,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
        )

    async def signal_with_start(
        self,
        run: MethodAsyncSingleParam[SelfType, ParamType, ReturnType],
        arg: ParamType,
        entity_key: str,
        signal: MethodSyncOrAsyncSingleParam[SelfType, SignalArg, None],
        signal_arg: SignalArg,
        *,
        task_queue: str | None = None,
    ) -> WorkflowHandle[SelfType, ReturnType]:
        """Signal an entity workflow, starting a new run if none is running."""
        defn = _definition(run)
        return await self.client.start_workflow(
            run,
            arg,
            id=self.id_for(run, entity_key),
            task_queue=_task_queue(defn, task_queue),
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            start_signal=wf._SignalDefinition.must_name_from_fn_or_str(signal),
            start_signal_args=[signal_arg],
        )

    async def signal(
        self,
        run: MethodAsyncSingleParam[SelfType, Any, Any],
        task_identifier: str,
        signal: MethodSyncOrAsyncSingleParam[SelfType, SignalArg, None],
        arg: SignalArg,
    ) -> None:
        """Signal the current run of a workflow by its deterministic ID."""
        handle = self.client.get_workflow_handle_for(run, self.id_for(run, task_identifier))
        await handle.signal(signal, arg)

    async def query(
        self,
        run: MethodAsyncSingleParam[SelfType, Any, Any],
        task_identifier: str,
        query: MethodSyncOrAsyncNoParam[SelfType, QueryResult],
    ) -> QueryResult:
        """Query the current run of a workflow by its deterministic ID."""
        handle = self.client.get_workflow_handle_for(run, self.id_for(run, task_identifier))
        return await handle.query(query)

"""The haul client: envconfig connections and deterministic-ID starts, signals and queries.

Task workflows start with USE_EXISTING / ALLOW_DUPLICATE_FAILED_ONLY, so a duplicate start
joins the running workflow, a finished one is never run again by accident, and a failed one
can be redriven. Entity workflows (retry_on_signal) use ALLOW_DUPLICATE, so the next event
after a completed run starts a fresh run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from temporalio import workflow as wf
from temporalio.client import Client, Interceptor, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfig
from temporalio.runtime import Runtime

from app.platform import tracing
from app.platform.discovery import owner_of
from app.platform.ids import workflow_id


async def connect(
    profile: str | None = None,
    *,
    config_file: str | None = None,
    interceptors: Sequence[Interceptor] = (),
    runtime: Runtime | None = None,
) -> Client:
    """Connect from an envconfig profile plus TEMPORAL_* variables, as the CLI does.

    Works alike for a local cluster, a self-hosted TLS cluster and Temporal Cloud (API key or
    mTLS): all of that lives in the profile, never in our code.
    """
    config = ClientConfig.load_client_connect_config(profile, config_file=config_file)
    return await Client.connect(
        **config,
        data_converter=pydantic_data_converter,
        interceptors=[*tracing.client_interceptors(), *interceptors],
        runtime=runtime,
    )


def workflow_type_name(workflow_cls: Any) -> str:
    """The registered Temporal name of a workflow class or its name as a string."""
    if isinstance(workflow_cls, str):
        return workflow_cls
    defn = wf._Definition.must_from_class(workflow_cls)
    return defn.name or workflow_cls.__name__


def _task_queue(workflow_cls: Any, task_queue: str | None) -> str:
    if task_queue:
        return task_queue
    owner = owner_of(workflow_cls)
    if owner is None:
        raise ValueError(f"{workflow_cls!r} has no registered task queue; pass task_queue=")
    return owner.task_queue


@dataclass
class HaulClient:
    """Wraps a temporalio Client with haul's ID and policy conventions."""

    client: Client

    def id_for(self, workflow_cls: Any, task_identifier: str) -> str:
        return workflow_id(workflow_type_name(workflow_cls), task_identifier)

    async def start(
        self,
        workflow_cls: Any,
        arg: Any,
        task_identifier: str,
        *,
        task_queue: str | None = None,
        **kwargs: Any,
    ) -> WorkflowHandle[Any, Any]:
        """Start a task workflow, or join the one already running under the same ID."""
        return await self.client.start_workflow(
            workflow_type_name(workflow_cls),
            arg,
            id=self.id_for(workflow_cls, task_identifier),
            task_queue=_task_queue(workflow_cls, task_queue),
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
            **kwargs,
        )

    async def signal_with_start(
        self,
        workflow_cls: Any,
        arg: Any,
        entity_key: str,
        signal: str,
        signal_arg: Any,
        *,
        task_queue: str | None = None,
        **kwargs: Any,
    ) -> WorkflowHandle[Any, Any]:
        """Signal an entity workflow, starting a new run if none is running."""
        return await self.client.start_workflow(
            workflow_type_name(workflow_cls),
            arg,
            id=self.id_for(workflow_cls, entity_key),
            task_queue=_task_queue(workflow_cls, task_queue),
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            start_signal=signal,
            start_signal_args=[signal_arg],
            **kwargs,
        )

    async def signal(self, workflow_cls: Any, task_identifier: str, signal: str, arg: Any) -> None:
        """Signal the current run of a workflow by its deterministic ID."""
        handle = self.client.get_workflow_handle(self.id_for(workflow_cls, task_identifier))
        await handle.signal(signal, arg)

    async def query(
        self, workflow_cls: Any, task_identifier: str, query: str, *, result_type: Any = None
    ) -> Any:
        """Query the current run of a workflow by its deterministic ID."""
        handle = self.client.get_workflow_handle(self.id_for(workflow_cls, task_identifier))
        return await handle.query(query, result_type=result_type)

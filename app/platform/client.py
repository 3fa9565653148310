"""The haul client: envconfig connections, and every call by deterministic ID through the router.

Task workflows start with USE_EXISTING / ALLOW_DUPLICATE_FAILED_ONLY, so a duplicate start
joins the running workflow, a finished one is never run again by accident, and a failed one
can be redriven. Entity workflows (retry_on_signal) use ALLOW_DUPLICATE, so the next event
after a completed run starts a fresh run.

Workflows, signals and queries are named by their methods (`GreetingWorkflow.run`,
`LedgerEntityWorkflow.on_event`), as in temporalio's own client, so mypy checks each input and
the handle knows its result type. `HaulClient` hands every call to a `ClusterRouter`: with one
cluster that router is a pass-through (no extra RPC, no database); with `HAUL_MIGRATION` it
follows the migration state in the app database and reaches both clusters.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from temporalio.client import Client, Interceptor, WorkflowHandle
from temporalio.envconfig import ClientConfig, ClientConnectConfig
from temporalio.runtime import Runtime
from temporalio.service import GrpcCompression
from temporalio.types import (
    MethodAsyncSingleParam,
    MethodSyncOrAsyncNoParam,
    MethodSyncOrAsyncSingleParam,
    ParamType,
    ReturnType,
    SelfType,
)

from app.core.database import Database
from app.core.settings import AppSettings, ClientSettings
from app.core.target import Target
from app.platform.failures import FailureStore
from app.platform.migration_state import MigrationStore
from app.platform.plugin import HaulPlugin
from app.platform.router import ClusterRouter

SignalArg = TypeVar("SignalArg")
QueryResult = TypeVar("QueryResult")

CONFIG_FILE_VAR = "TEMPORAL_CONFIG_FILE"


def connect_config(
    profile: str | None = None,
    *,
    config_file: str | None = None,
    env_overrides: bool = True,
    environ: Mapping[str, str] | None = None,
) -> ClientConnectConfig:
    """A profile's connection settings.

    With `env_overrides` (one cluster per process) TEMPORAL_* variables override the profile,
    as the `temporal` CLI does. Without it only TEMPORAL_CONFIG_FILE is read from the
    environment, so that two profiles loaded in one process each reach their own cluster
    instead of both following TEMPORAL_ADDRESS.
    """
    # The bridge takes a plain dict.
    env = dict(os.environ if environ is None else environ)
    if not env_overrides:
        env = {k: v for k, v in env.items() if k == CONFIG_FILE_VAR and not config_file}
    return ClientConfig.load_client_connect_config(
        profile, config_file=config_file, override_env_vars=env
    )


async def connect(
    profile: str | None = None,
    *,
    config_file: str | None = None,
    env_overrides: bool = True,
    failure_store: FailureStore | None = None,
    interceptors: Sequence[Interceptor] = (),
    runtime: Runtime | None = None,
) -> Client:
    """Connect from an envconfig profile (see `connect_config`), as the CLI does.

    Works alike for a local cluster, a self-hosted TLS cluster and Temporal Cloud (API key or
    mTLS): all of that lives in the profile, never in our code. The client carries the haul
    plugin; `failure_store` is where workers built on it record failed workflows. gRPC
    compression follows HAUL_GRPC_COMPRESSION (default gzip, the SDK's; see ClientSettings).
    """
    config = connect_config(profile, config_file=config_file, env_overrides=env_overrides)
    return await Client.connect(
        **config,
        grpc_compression=grpc_compression(ClientSettings()),
        plugins=[HaulPlugin(failure_store)],
        interceptors=list(interceptors),
        runtime=runtime,
    )


def grpc_compression(settings: ClientSettings) -> GrpcCompression:
    """The SDK's compression mode for a setting."""
    return GrpcCompression.GZIP if settings.grpc_compression == "gzip" else GrpcCompression.NONE


class HaulClient:
    """haul's ID and policy conventions over a `ClusterRouter`.

    `HaulClient(client)` serves that one cluster; `HaulClient.connect(target)` reaches the
    target's cluster and, when the target is in a migration, every cluster the migration
    state names.
    """

    def __init__(self, client: Client | ClusterRouter, *, db: Database | None = None) -> None:
        if isinstance(client, ClusterRouter):
            self.router = client
        else:
            self.router = ClusterRouter({"": client}, cluster="")
        self._db = db

    @classmethod
    async def connect(
        cls,
        target: Target,
        *,
        failure_store: FailureStore | None = None,
        interceptors: Sequence[Interceptor] = (),
        runtime: Runtime | None = None,
        refresh_seconds: float = 1.0,
    ) -> HaulClient:
        """Connect to `target`; with `target.migration`, through the app database's state."""

        async def connect_to(profile: str | None, env_overrides: bool) -> Client:
            return await connect(
                profile,
                config_file=target.config_file,
                env_overrides=env_overrides,
                failure_store=failure_store,
                interceptors=interceptors,
                runtime=runtime,
            )

        if not target.migration:
            return cls(await connect_to(target.profile, True))
        if not target.profile:
            raise ValueError(
                "HAUL_MIGRATION needs the cluster named by an envconfig profile: set "
                "TEMPORAL_PROFILE (or pass --cluster for a local cluster)"
            )
        primary = await connect_to(target.profile, False)
        db = Database(target.database_url)
        router = ClusterRouter(
            {target.profile: primary},
            MigrationStore(db),
            cluster=target.profile,
            refresh_seconds=refresh_seconds,
            connector=lambda name: connect_to(name, False),
            cache_size=AppSettings().router_cache_size,
        )
        try:
            await router.open()
        except BaseException:
            await router.close()
            db.close()
            raise
        return cls(router, db=db)

    async def close(self) -> None:
        """Leave the routers' table at once and close the app database pool, if any."""
        await self.router.close()
        if self._db is not None:
            self._db.close()

    @property
    def client(self) -> Client:
        """The client of the cluster new work goes to when no migration is under way."""
        return self.router.clients[self.router.state.old]

    def id_for(self, run: Any, task_identifier: str) -> str:
        """The deterministic ID of `task_identifier`'s run of the workflow whose run method
        is `run`."""
        return self.router.id_for(run, task_identifier)

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
        return await self.router.start(
            run, arg, task_identifier, task_queue=task_queue, execution_timeout=execution_timeout
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
        return await self.router.signal_with_start(
            run, arg, entity_key, signal, signal_arg, task_queue=task_queue
        )

    async def signal(
        self,
        run: MethodAsyncSingleParam[SelfType, Any, Any],
        task_identifier: str,
        signal: MethodSyncOrAsyncSingleParam[SelfType, SignalArg, None],
        arg: SignalArg,
    ) -> None:
        """Signal the open run of a workflow by its deterministic ID."""
        await self.router.signal(run, task_identifier, signal, arg)

    async def query(
        self,
        run: MethodAsyncSingleParam[SelfType, Any, Any],
        task_identifier: str,
        query: MethodSyncOrAsyncNoParam[SelfType, QueryResult],
    ) -> QueryResult:
        """Query the run of a workflow by its deterministic ID."""
        return await self.router.query(run, task_identifier, query)

    async def cancel(
        self, run: MethodAsyncSingleParam[SelfType, Any, Any], task_identifier: str
    ) -> None:
        """Request cancellation of the open run of a workflow by its deterministic ID."""
        await self.router.cancel(run, task_identifier)

    async def handle(
        self, run: MethodAsyncSingleParam[SelfType, Any, ReturnType], task_identifier: str
    ) -> WorkflowHandle[SelfType, ReturnType]:
        """A handle on the ID's current run wherever it is (follows continue-as-new)."""
        return (await self.router.handle(run, task_identifier))[1]

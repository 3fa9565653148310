"""What `haul migrate` does to the state: gather the facts a transition needs, check it,
announce it, and wait until every live router has acknowledged it.

The checks are the ones `phases.transition` makes; `preview` runs them without writing, so a
command can say what it will change (or why it cannot) before it asks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client

from app.platform import migration_checks
from app.platform.discovery import Discovered
from app.platform.handoff_store import HandoffStore
from app.platform.migration_state import MigrationStore, RouterRow
from app.platform.phases import Action, Facts, MigrationState, Phase, transition


class NotInEffectError(TimeoutError):
    """Routers did not acknowledge a version in time; the message names them."""


@dataclass
class MigrationControl:
    """The operator's side of a migration: `connect` reaches a cluster by its profile name."""

    store: MigrationStore
    connect: Callable[[str], Awaitable[Client]]
    discovered: Discovered
    # The cluster in use when no migration row exists yet.
    home: str
    clients: dict[str, Client] = field(default_factory=dict)

    async def client(self, cluster: str) -> Client:
        if cluster not in self.clients:
            self.clients[cluster] = await self.connect(cluster)
        return self.clients[cluster]

    async def state(self) -> MigrationState:
        return await asyncio.to_thread(self.store.read) or MigrationState(old=self.home)

    async def app_namespaces(self, cluster: str) -> dict[str, list[str]]:
        """The app's namespace and the custom search attributes registered for it there."""
        client = await self.client(cluster)
        have = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
        return {client.namespace: sorted(have.custom_attributes)}

    async def facts(self, state: MigrationState, action: Action) -> Facts:
        """The live facts `action` needs from `state` (only those: each costs RPCs)."""
        facts = Facts(
            current_in_effect=await asyncio.to_thread(self.store.in_effect, state.version)
        )
        if action is Action.ROUTE and state.phase is Phase.DUAL and state.new:
            new = await self.client(state.new)
            facts = replace(
                facts,
                missing_task_queues=tuple(
                    await migration_checks.missing_pollers(new, self.discovered)
                ),
                missing_namespaces=tuple(
                    await migration_checks.missing_namespaces(
                        new, await self.app_namespaces(state.old)
                    )
                ),
            )
        if action is Action.MARK_DRAINED:
            old = await self.client(state.old)
            facts = replace(
                facts,
                open_on_old=await migration_checks.open_workflows(old),
                handoffs_in_flight=await asyncio.to_thread(
                    HandoffStore(self.store.db).unresumed, state.old
                ),
            )
        return facts

    async def preview(
        self, action: Action, new_cluster: str | None = None
    ) -> tuple[MigrationState, MigrationState]:
        """(now, after) for `action`; TransitionRefusedError says why it cannot happen now."""
        state = await self.state()
        facts = await self.facts(state, action)
        return state, transition(state, action, facts, new_cluster=new_cluster)

    async def apply(
        self, action: Action, *, actor: str, reason: str, new_cluster: str | None = None
    ) -> MigrationState:
        """Announce `action` (re-checked under the table lock) and return the new state."""
        state = await self.state()
        facts = await self.facts(state, action)
        return await asyncio.to_thread(
            lambda: self.store.announce(
                action,
                facts,
                actor=actor,
                reason=reason,
                old_cluster=state.old,
                new_cluster=new_cluster,
            )
        )

    async def wait_in_effect(
        self,
        version: int,
        timeout: float,
        on_wait: Callable[[list[RouterRow]], None] | None = None,
    ) -> None:
        """Until every live router acknowledged `version`; NotInEffectError names the rest."""
        deadline = time.monotonic() + timeout
        while True:
            behind = await asyncio.to_thread(self.store.behind, version)
            if not behind:
                return
            if time.monotonic() > deadline:
                names = ", ".join(f"{r.router_id} (acked {r.acked_version})" for r in behind)
                raise NotInEffectError(
                    f"version {version} is announced but not yet in effect after {timeout:.0f}s: "
                    f"{names} have not acknowledged it; a dead router drops out after "
                    f"{self.store.ttl_seconds:.0f}s, or stop it"
                )
            if on_wait is not None:
                on_wait(behind)
            await asyncio.sleep(0.5)

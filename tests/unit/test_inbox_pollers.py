"""`haul api`'s poller loop: a cluster the router connects while the API runs (a migration
started after it) gets a poller of its own, and no cluster gets two."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pytest

from app.api import inbox as inbox_module
from app.api.inbox import Inbox


async def _until(check: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.01)


async def test_a_cluster_connected_later_gets_its_own_poller_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started: list[str] = []

    class RecordingPoller:
        def __init__(self, client: Any, store: Any, *, cluster: str, teams: Any) -> None:
            self.cluster = cluster

        async def run(self, stop: asyncio.Event, interval: float) -> None:
            started.append(self.cluster)
            await stop.wait()

    async def no_redrives(client: Any, store: Any) -> int:
        return 0

    monkeypatch.setattr(inbox_module, "Poller", RecordingPoller)
    monkeypatch.setattr(inbox_module, "follow_redrives", no_redrives)
    clients: dict[str, Any] = {"": object()}  # a router before any migration
    haul = SimpleNamespace(router=SimpleNamespace(clients=clients))
    inbox = Inbox(store=object(), haul=haul, cluster="prod-a", poll_seconds=0.01)  # type: ignore[arg-type]
    stop = asyncio.Event()
    loop = asyncio.create_task(inbox.run(stop))
    await _until(lambda: started == ["prod-a"], "a poller for the first cluster")
    # `haul migrate start`: the router now names both clusters by profile; prod-a is the
    # cluster it already polls, so only prod-b is new.
    clients.clear()
    clients.update({"prod-a": object(), "prod-b": object()})
    await _until(lambda: "prod-b" in started, "a poller for the cluster connected later")
    await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(loop, 60)
    assert sorted(started) == ["prod-a", "prod-b"]

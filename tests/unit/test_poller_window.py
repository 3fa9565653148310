"""The poller's look-back: the whole overlap on a fresh poller and once per recheck, a short
slack in between, so late visibility is still caught without re-listing the window each pass."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from app.platform.failure_poller import STUCK_QUERY, Poller, closed_query

MARK = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)


class Client:
    """Records every visibility query; lists nothing."""

    namespace = "haul"

    def __init__(self) -> None:
        self.queries: list[str] = []

    def list_workflows(self, query: str) -> AsyncIterator[Any]:
        self.queries.append(query)

        async def empty() -> AsyncIterator[Any]:
            for item in ():
                yield item

        return empty()


class Store:
    def high_water(self, cluster: str, namespace: str) -> datetime:
        return MARK

    def recorded_keys(self, *args: Any, **kwargs: Any) -> set[str]:
        return set()

    def record_many(self, recs: Any) -> int:
        return 0

    def advance(self, *args: Any) -> None:
        raise AssertionError("nothing was listed, so the mark must not move")


def closed_since(client: Client) -> list[str]:
    return [q for q in client.queries if q != STUCK_QUERY]


def test_the_full_overlap_on_start_and_per_recheck_and_the_slack_between() -> None:
    client = Client()
    poller = Poller(
        client,  # type: ignore[arg-type]
        Store(),  # type: ignore[arg-type]
        cluster="c",
        overlap=timedelta(minutes=5),
        slack=timedelta(seconds=15),
        recheck=timedelta(hours=1),
    )

    async def passes() -> None:
        await poller.poll_once()
        await poller.poll_once()
        poller.recheck = timedelta(0)  # the recheck is due
        await poller.poll_once()

    asyncio.run(passes())
    assert closed_since(client) == [
        closed_query(MARK - timedelta(minutes=5)),
        closed_query(MARK - timedelta(seconds=15)),
        closed_query(MARK - timedelta(minutes=5)),
    ]


def test_a_fresh_poller_rechecks_the_whole_overlap_again() -> None:
    first, second = Client(), Client()
    for client in (first, second):
        poller = Poller(client, Store(), cluster="c", overlap=timedelta(minutes=2))  # type: ignore[arg-type]
        asyncio.run(poller.poll_once())
    assert (
        closed_since(first) == closed_since(second) == [closed_query(MARK - timedelta(minutes=2))]
    )

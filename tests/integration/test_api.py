"""`haul api` on the dev stack: its poller records failures, the JSON API groups, pages,
redrives (one and in bulk), resolves and reopens them, and refuses what it must."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError
from temporalio.worker import Worker

from app.api import create_app
from app.api.auth import Auth
from app.api.inbox import Inbox
from app.platform.client import HaulClient
from app.platform.failures import FailureStore
from app.stack.registry import ClusterRecord
from tests.api_server import ApiServer, api_server
from tests.integration.failure_workflows import FailingWorkflow, FailInput, FixedFailingWorkflow

TOKEN = f"it-token-{uuid.uuid4().hex}"
WRONG = f"wrong-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def api(
    dev_cluster: ClusterRecord, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiServer]:
    log = tmp_path_factory.mktemp("api") / "haul-api.log"
    with api_server(dev_cluster, log, TOKEN) as server:
        yield server


@pytest.fixture
def store(dev_cluster: ClusterRecord) -> FailureStore:
    return FailureStore(dev_cluster.dsn())


async def fail_runs(client: Client, task_queue: str, messages: list[str], kind: str) -> list[str]:
    """Run FailingWorkflow once per message to its failure; the workflow IDs."""
    async with Worker(client, task_queue=task_queue, workflows=[FailingWorkflow]):
        handles = [
            await client.start_workflow(
                FailingWorkflow.run,
                FailInput(m, error_type=kind),
                id=f"api-{uuid.uuid4().hex[:12]}",
                task_queue=task_queue,
            )
            for m in messages
        ]
        for h in handles:
            with pytest.raises(WorkflowFailureError):
                await asyncio.wait_for(h.result(), 60)
    return [h.id for h in handles]


async def get_json(api: ApiServer, path: str, **params: Any) -> Any:
    async with httpx.AsyncClient(base_url=api.url, timeout=60) as http:
        response = await http.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def until(check: Any, what: str, deadline: float = 120) -> Any:
    """Call async `check()` until it returns something truthy; fail after `deadline` seconds."""
    end = asyncio.get_running_loop().time() + deadline
    while True:
        found = await check()
        if found:
            return found
        if asyncio.get_running_loop().time() > end:
            raise AssertionError(f"{what}: not within {deadline}s")
        await asyncio.sleep(0.3)


async def recorded(api: ApiServer, task_queue: str, n: int) -> list[dict[str, Any]]:
    """Wait until the API's own poller has recorded `n` failures on this queue."""

    async def check() -> list[dict[str, Any]] | None:
        page = await get_json(api, "/api/failures", task_queue=task_queue, limit=500)
        return page["items"] if page["total"] >= n else None

    items = await until(check, f"{n} failures on {task_queue} recorded by haul api's poller")
    assert len(items) == n
    return items


async def test_failures_are_recorded_grouped_and_paged(
    api: ApiServer, client: Client, task_queue: str, dev_cluster: ClusterRecord
) -> None:
    kind = f"ApiGroup{uuid.uuid4().hex[:6]}"
    messages = [f"no rate for lane {n} of carrier 'C{n}'" for n in range(4)] + [
        f"invoice {n} total {n * 7}.50 does not match" for n in range(3)
    ]
    ids = await fail_runs(client, task_queue, messages, kind)
    items = await recorded(api, task_queue, 7)
    assert {i["workflow_id"] for i in items} == set(ids)

    summary = await get_json(api, "/api/failures/summary", task_queue=task_queue)
    assert summary["total"] == 7
    assert sorted(g["count"] for g in summary["groups"]) == [3, 4]
    assert all(g["error_type"] == kind for g in summary["groups"])
    by_type = await get_json(
        api, "/api/failures/summary", task_queue=task_queue, by="workflow_type"
    )
    assert [(g["key"], g["count"]) for g in by_type["groups"]] == [("FailingWorkflow", 7)]
    window = await get_json(api, "/api/failures/summary", task_queue=task_queue, hours=1)
    assert window["total"] == 7
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (await get_json(api, "/api/failures/summary", task_queue=task_queue, since=future))[
        "total"
    ] == 0

    # Paging: disjoint pages that together hold every failure, newest first.
    pages = [
        await get_json(api, "/api/failures", task_queue=task_queue, limit=3, offset=o)
        for o in (0, 3, 6)
    ]
    assert [len(p["items"]) for p in pages] == [3, 3, 1]
    assert {p["total"] for p in pages} == {7}
    seen = [i["id"] for p in pages for i in p["items"]]
    assert len(set(seen)) == 7
    fingerprint = next(g["key"] for g in summary["groups"] if g["count"] == 4)
    one = await get_json(api, "/api/failures", task_queue=task_queue, fingerprint=fingerprint)
    assert one["total"] == 4

    detail = await get_json(api, f"/api/failures/{seen[0]}")
    f = detail["failure"]
    assert f["arguments"][0]["message"] in messages
    assert "FailingWorkflow" in f["failure_stack"] or f["error_message"] in messages
    assert detail["temporal_ui_url"].startswith(dev_cluster.ui_url + "/namespaces/")
    assert (
        f["workflow_id"] in detail["temporal_ui_url"] and f["run_id"] in detail["temporal_ui_url"]
    )

    # The dashboard shows the groups with their counts; the list page the failures.
    async with httpx.AsyncClient(base_url=api.url, timeout=60) as http:
        page = await http.get("/", params={"task_queue": task_queue})
        assert page.status_code == 200 and fingerprint in page.text
        assert page.text.count('class="group"') == 2
        listing = await http.get("/failures", params={"fingerprint": fingerprint})
        assert listing.status_code == 200 and "4 failures" in listing.text


async def test_bad_reads_get_clear_errors(api: ApiServer) -> None:
    async with httpx.AsyncClient(base_url=api.url, timeout=60) as http:
        by = await http.get("/api/failures/summary", params={"by": "colour"})
        assert by.status_code == 422 and "group by one of" in by.text
        missing = await http.get("/api/failures/987654321")
        assert missing.status_code == 404 and "987654321" in missing.text
        assert (await http.get("/api/failures", params={"limit": 0})).status_code == 422
        assert (await http.get("/api/failures", params={"status": "maybe"})).status_code == 422
        docs = await http.get("/openapi.json")
        assert "/api/failures/{failure_id}/redrive" in docs.json()["paths"]
        assert (await http.get("/docs")).status_code == 200


async def test_a_redrive_after_a_fix_is_linked_and_followed_to_completion(
    api: ApiServer, client: Client, task_queue: str, store: FailureStore
) -> None:
    await fail_runs(client, task_queue, ["carrier feed was empty"], "ApiRedrive")
    [item] = await recorded(api, task_queue, 1)
    path = f"/api/failures/{item['id']}/redrive"
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        # Refused without the token, or with a wrong one: nothing is started.
        assert (await http.post(path)).status_code == 401
        wrong = await http.post(path, headers={"Authorization": f"Bearer {WRONG}"})
        assert wrong.status_code == 401
        assert store.redrives(item["id"]) == []
        async with Worker(client, task_queue=task_queue, workflows=[FixedFailingWorkflow]):
            done = await http.post(path, headers=api.headers(), json={"options": {"mode": "rerun"}})
            assert done.status_code == 200, done.text
            run_id = done.json()["new_run_id"]
            assert run_id and run_id != item["run_id"]
            assert run_id in done.json()["temporal_ui_url"]

            async def completed() -> bool:
                links = await get_json(api, f"/api/failures/{item['id']}/redrives")
                return [(r["new_run_id"], r["outcome"]) for r in links] == [(run_id, "Completed")]

            # Followed by haul api's own loop, not by this test.
            await until(completed, "the redrive followed to Completed")
        result = await client.get_workflow_handle(item["workflow_id"], run_id=run_id).result()
        assert result == "fixed: carrier feed was empty"
        again = await http.post(path, headers=api.headers())
        assert again.status_code == 409 and "already redriven" in again.text
        detail = (await http.get(f"/api/failures/{item['id']}")).json()
        assert detail["failure"]["redrive_run_id"] == run_id


async def test_resolve_with_a_note_and_reopen(
    api: ApiServer, client: Client, task_queue: str
) -> None:
    await fail_runs(client, task_queue, ["duplicate invoice"], "ApiResolve")
    [item] = await recorded(api, task_queue, 1)
    async with httpx.AsyncClient(base_url=api.url, timeout=60, headers=api.headers()) as http:
        done = await http.post(
            f"/api/failures/{item['id']}/resolve", json={"note": "carrier resent it"}
        )
        assert done.status_code == 200, done.text
        assert done.json()["failure"]["status"] == "resolved"
        assert "carrier resent it" in done.json()["failure"]["notes"]
        assert (await get_json(api, "/api/failures", task_queue=task_queue))["total"] == 0
        resolved = await get_json(api, "/api/failures", task_queue=task_queue, status="resolved")
        assert resolved["total"] == 1
        back = await http.post(f"/api/failures/{item['id']}/reopen", json={"note": "came back"})
        assert back.json()["failure"]["status"] == "open"
        assert back.json()["failure"]["notes"].splitlines() == ["carrier resent it", "came back"]
        missing = await http.post("/api/failures/987654321/resolve", json={})
        assert missing.status_code == 404


async def test_bulk_redrive_by_filter_keeps_its_rate(
    api: ApiServer, client: Client, task_queue: str, store: FailureStore
) -> None:
    await fail_runs(client, task_queue, [f"lane {n} unknown" for n in range(3)], "ApiBulk")
    items = await recorded(api, task_queue, 3)
    body: dict[str, Any] = {"filter": {"task_queue": task_queue}, "per_second": 2, "limit": 10}
    async with httpx.AsyncClient(base_url=api.url, timeout=60, headers=api.headers()) as http:
        too_fast = await http.post("/api/failures/redrive", json={**body, "per_second": 1000})
        assert too_fast.status_code == 422 and "HAUL_API_MAX_REDRIVE_RATE" in too_fast.text
        too_many = await http.post("/api/failures/redrive", json={**body, "limit": 10**6})
        assert too_many.status_code == 422
        async with Worker(client, task_queue=task_queue, workflows=[FixedFailingWorkflow]):
            done = await http.post("/api/failures/redrive", json=body)
            assert done.status_code == 200, done.text
            assert sorted(done.json()["redriven"]) == sorted(i["id"] for i in items)
            assert done.json()["refused"] == []
            again = await http.post("/api/failures/redrive", json=body)
            assert again.json()["redriven"] == []
    starts = sorted(r.requested_at for i in items for r in store.redrives(i["id"]))
    assert len(starts) == 3
    # At most 2 a second: consecutive starts at least half a second apart.
    gaps = [(b - a).total_seconds() for a, b in zip(starts, starts[1:], strict=False)]
    assert min(gaps) >= 0.45, gaps


async def test_a_cross_site_form_post_changes_nothing(
    api: ApiServer, client: Client, task_queue: str, store: FailureStore
) -> None:
    await fail_runs(client, task_queue, ["forged"], "ApiCsrf")
    [item] = await recorded(api, task_queue, 1)
    async with httpx.AsyncClient(base_url=api.url, timeout=60) as http:
        login = await http.get("/login")
        csrf = login.cookies["haul_csrf"]
        signed = await http.post(
            "/login",
            data={"csrf_token": csrf, "token": TOKEN, "next": "/"},
            headers={"Origin": api.url},
        )
        assert signed.status_code == 303
        forged = await http.post(
            f"/failures/{item['id']}/resolve",
            data={"csrf_token": csrf, "note": "pwned"},
            headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        )
        assert forged.status_code == 403
        assert store.get(item["id"]).status == "open"
        # The same post from the page itself goes through.
        ok = await http.post(
            f"/failures/{item['id']}/resolve",
            data={"csrf_token": csrf, "note": "from the page"},
            headers={"Origin": api.url, "Sec-Fetch-Site": "same-origin"},
        )
        assert ok.status_code == 303
    assert store.get(item["id"]).status == "resolved"


async def test_with_no_token_set_changes_are_refused(
    api: ApiServer, client: Client, task_queue: str, store: FailureStore
) -> None:
    await fail_runs(client, task_queue, ["no token"], "ApiNoToken")
    [item] = await recorded(api, task_queue, 1)
    inbox = Inbox(store=store, haul=HaulClient(client), cluster="it-dev")
    with TestClient(create_app(inbox, Auth(None), poll=False)) as http:
        for path in ("resolve", "reopen", "redrive"):
            response = http.post(
                f"/api/failures/{item['id']}/{path}", headers={"Authorization": "Bearer x"}
            )
            assert response.status_code == 403, path
        assert http.get(f"/api/failures/{item['id']}").status_code == 200
    assert (store.get(item["id"]).status, store.redrives(item["id"])) == ("open", [])


def test_the_token_is_never_logged(api: ApiServer) -> None:
    httpx.post(f"{api.url}/api/failures/1/resolve", headers={"Authorization": f"Bearer {WRONG}"})
    text = Path(api.log).read_text()
    assert "/api/failures/1/resolve" in text, "the access log is missing: nothing was checked"
    assert TOKEN not in text and WRONG not in text


async def signed_in(http: httpx.AsyncClient, api: ApiServer) -> str:
    """Sign in on /login as a person would; the page's CSRF value."""
    csrf = (await http.get("/login")).cookies["haul_csrf"]
    signed = await http.post(
        "/login",
        data={"csrf_token": csrf, "token": TOKEN, "next": "/"},
        headers={"Origin": api.url},
    )
    assert signed.status_code == 303
    return csrf


async def test_a_reset_redrive_from_the_page_excludes_signals_when_unticked(
    api: ApiServer, client: Client, task_queue: str, store: FailureStore
) -> None:
    async with Worker(client, task_queue=task_queue, workflows=[FailingWorkflow]):
        handle = await client.start_workflow(
            FailingWorkflow.run,
            FailInput("bad lane", error_type="ApiReset", signals=1),
            id=f"api-{uuid.uuid4().hex[:12]}",
            task_queue=task_queue,
        )

        # Signal only after the first workflow task completed, so a reset to it predates it.
        async def first_task_done() -> bool:
            kinds = [e.event_type async for e in handle.fetch_history_events()]
            return EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED in kinds

        await until(first_task_done, "the first workflow task")
        await handle.signal(FailingWorkflow.go, "before")
        with pytest.raises(WorkflowFailureError):
            await asyncio.wait_for(handle.result(), 60)
    [item] = await recorded(api, task_queue, 1)
    form_path = f"/failures/{item['id']}/redrive"
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        csrf = await signed_in(http, api)
        same_site = {"Origin": api.url, "Sec-Fetch-Site": "same-origin"}
        async with Worker(client, task_queue=task_queue, workflows=[FixedFailingWorkflow]):
            # The checkbox left unticked: the form sends no reapply_signals.
            done = await http.post(
                form_path,
                data={"csrf_token": csrf, "mode": "reset", "reset_to": "first"},
                headers=same_site,
            )
            assert done.status_code == 303, done.text
            [link] = store.redrives(item["id"])
            assert (link.mode, link.reset_to, link.reapply_signals) == ("reset", "first", False)
            # Without the signal re-applied the reset run waits for one; send it a new one.
            reset_run = client.get_workflow_handle(item["workflow_id"], run_id=link.new_run_id)
            await reset_run.signal(FailingWorkflow.go, "after")
            assert await reset_run.result() == "fixed: bad lane +after"

            async def completed() -> bool:
                return store.redrives(item["id"])[0].outcome == "Completed"

            await until(completed, "the reset run followed to Completed")
        # The page shows the redrive; a second one is refused on the page, not with a crash.
        page = await http.get(f"/failures/{item['id']}")
        assert link.new_run_id in page.text and "Completed" in page.text
        again = await http.post(form_path, data={"csrf_token": csrf}, headers=same_site)
        assert again.status_code == 409 and "already redriven" in again.text

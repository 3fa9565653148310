"""The failure inbox in a real browser: sign in, find the failure's group, redrive it from its
page (after declining once), and watch the redrive's status become Completed."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Dialog, expect
from temporalio.client import Client, WorkflowFailureError
from temporalio.worker import Worker

from app.platform.failures import FailureStore
from app.stack.registry import ClusterRecord
from tests.api_server import ApiServer
from tests.integration.failure_workflows import FailingWorkflow, FailInput, FixedFailingWorkflow


async def recorded_id(api: ApiServer, task_queue: str) -> int:
    """The failure's ID once haul api's own poller has recorded it."""
    async with httpx.AsyncClient(base_url=api.url, timeout=60) as http:
        for _ in range(200):
            page = (await http.get("/api/failures", params={"task_queue": task_queue})).json()
            if page["items"]:
                return int(page["items"][0]["id"])
            await asyncio.sleep(0.3)
    raise AssertionError(f"haul api recorded no failure on {task_queue}")


async def test_redrive_from_the_dashboard_until_completed(
    browser: Browser,
    browser_client: Client,
    browser_cluster: ClusterRecord,
    inbox_api: ApiServer,
    tmp_path: Path,
) -> None:
    task_queue = f"tq-{uuid.uuid4()}"
    kind = f"CarrierFeedEmpty{uuid.uuid4().hex[:6]}"
    async with Worker(browser_client, task_queue=task_queue, workflows=[FailingWorkflow]):
        handle = await browser_client.start_workflow(
            FailingWorkflow.run,
            FailInput("feed for carrier 'ACME' was empty", error_type=kind),
            id=f"browser-{uuid.uuid4().hex[:12]}",
            task_queue=task_queue,
        )
        with pytest.raises(WorkflowFailureError):
            await asyncio.wait_for(handle.result(), 60)
    failure_id = await recorded_id(inbox_api, task_queue)
    store = FailureStore(browser_cluster.dsn())

    page = await browser.new_page()
    try:
        await page.goto(f"{inbox_api.url}/login")
        await page.fill("input[name=token]", inbox_api.token)
        await page.click("#sign-in")
        await expect(page.locator("#groups")).to_be_visible()
        # The dashboard: the failure's cause is a group with its count and bar.
        group = page.locator("tr.group", has_text=kind)
        await expect(group).to_have_count(1)
        await expect(group.locator("svg.bar rect")).to_have_count(1)
        await group.locator("a").first.click()
        await page.click(f"a[href='/failures/{failure_id}']")
        await expect(page.locator("#arguments")).to_contain_text("ACME")
        ui = re.escape(browser_cluster.ui_url)
        await expect(page.locator("#temporal-ui")).to_have_attribute(
            "href", re.compile(rf"^{ui}/namespaces/[^/]+/workflows/{handle.id}/[-0-9a-f]+/history$")
        )

        # Declining the confirmation redrives nothing.
        async def dismiss(dialog: Dialog) -> None:
            await dialog.dismiss()

        page.once("dialog", dismiss)
        await page.click("#redrive")
        await expect(page.locator("text=Not redriven yet.")).to_be_visible()
        assert store.redrives(failure_id) == []

        async with Worker(browser_client, task_queue=task_queue, workflows=[FixedFailingWorkflow]):

            async def accept(dialog: Dialog) -> None:
                await dialog.accept()

            page.once("dialog", accept)
            await page.click("#redrive")
            outcome = page.locator(".redrive-outcome")
            await expect(outcome).to_have_count(1)
            # The page polls the redrive's status; haul api follows the run until it closes.
            await expect(outcome).to_have_text("Completed", timeout=60_000)
        await page.screenshot(path=str(tmp_path / "redrive-completed.png"), full_page=True)
        assert (tmp_path / "redrive-completed.png").stat().st_size > 0
    finally:
        await page.close()
    [link] = store.redrives(failure_id)
    assert link.outcome == "Completed"

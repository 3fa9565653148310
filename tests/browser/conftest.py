"""The browser tier: `haul api` on its own dev cluster, seen through headless Chromium.

Chromium is Debian's `chromium` package (`make test` installs it), driven by Playwright through
`executable_path`, so Playwright downloads nothing. A missing browser fails the tier.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from playwright.async_api import Browser, async_playwright
from temporalio.client import Client

from app.stack.registry import ClusterRecord
from tests import dev_stack
from tests.api_server import ApiServer, api_server

TOKEN = f"browser-{uuid.uuid4().hex}"


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "Debian's chromium is not installed: `apt-get install chromium` (make test does)"
    return found


@pytest.fixture(scope="session")
def browser_cluster() -> Iterator[ClusterRecord]:
    with dev_stack.dev_cluster("br-dev") as rec:
        yield rec


@pytest_asyncio.fixture(scope="session")
async def browser_client(browser_cluster: ClusterRecord) -> AsyncIterator[Client]:
    yield await dev_stack.dev_client(browser_cluster)


@pytest.fixture(scope="session")
def inbox_api(
    browser_cluster: ClusterRecord, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiServer]:
    log = tmp_path_factory.mktemp("browser-api") / "haul-api.log"
    with api_server(browser_cluster, log, TOKEN) as server:
        yield server


@pytest_asyncio.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    # Chromium's sandbox needs user namespaces, which a root test runner in a container lacks.
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=chromium_path(), headless=True, args=args)
        try:
            yield b
        finally:
            await b.close()

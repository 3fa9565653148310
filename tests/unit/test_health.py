"""The worker's /healthz answers 200 only while the workers poll; other paths are 404."""

from __future__ import annotations

import httpx
import pytest

from app.platform.health import HealthServer, Readiness, health_app


async def test_healthz_follows_readiness() -> None:
    readiness = Readiness()
    app = health_app(readiness, "http://127.0.0.1:9/metrics")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://worker"
    ) as http:
        assert (await http.get("/healthz")).status_code == 503
        readiness.ready = True
        ok = await http.get("/healthz")
        assert (ok.status_code, ok.text) == (200, "ok\n")
        readiness.ready = False
        assert (await http.get("/healthz")).status_code == 503
        assert (await http.get("/nothing")).status_code == 404


async def test_server_binds_at_start_and_releases_the_port_at_stop() -> None:
    server = HealthServer("127.0.0.1", 0, "http://127.0.0.1:9/metrics")
    await server.start()
    port = server.port
    server.readiness.ready = True
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
    await server.stop()
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as http:
            await http.get(f"http://127.0.0.1:{port}/healthz")

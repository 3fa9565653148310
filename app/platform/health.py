"""The worker's `/healthz` and `/metrics`: a small Starlette app under uvicorn, in the worker's
own event loop.

`/healthz` answers 200 only while the workers poll (503 before and while shutting down), so a
probe never routes to a worker that is starting or draining. `/metrics` is the SDK's Prometheus
page, fetched from the runtime's own exporter on a private port.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route


@dataclass
class Readiness:
    """Whether the workers are polling; the worker flips it, `/healthz` reads it."""

    ready: bool = False


def health_app(readiness: Readiness, sdk_metrics_url: str) -> Starlette:
    """`/healthz` and `/metrics` for one worker process."""

    async def healthz(_: Request) -> PlainTextResponse:
        if readiness.ready:
            return PlainTextResponse("ok\n")
        return PlainTextResponse("shutting down\n", status_code=503)

    async def metrics(_: Request) -> PlainTextResponse:
        async with httpx.AsyncClient(timeout=5) as http:
            page = await http.get(sdk_metrics_url)
        return PlainTextResponse(page.content)

    return Starlette(routes=[Route("/healthz", healthz), Route("/metrics", metrics)])


class _InLoopServer(uvicorn.Server):
    """uvicorn as one task of the worker's loop: the worker, not uvicorn, owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HealthServer:
    """Serves `health_app` on host:port until `stop`."""

    def __init__(self, host: str, port: int, sdk_metrics_url: str) -> None:
        self.readiness = Readiness()
        config = uvicorn.Config(
            health_app(self.readiness, sdk_metrics_url),
            lifespan="off",
            access_log=False,
            log_config=None,
            log_level="warning",
        )
        self._server = _InLoopServer(config)
        self._host, self._port = host, port
        self._socket: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The bound port (the configured one, or the one the OS picked for port 0)."""
        if self._socket is None:
            raise RuntimeError("the health server is not started")
        return int(self._socket.getsockname()[1])

    async def start(self) -> None:
        """Bind now (a taken port fails here, not later in a task), then serve in the loop."""
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        self._socket = socket.create_server((self._host, self._port), family=family)
        self._task = asyncio.create_task(self._server.serve(sockets=[self._socket]))

    async def stop(self) -> None:
        if self._task is not None:
            self._server.should_exit = True
            await self._task
        if self._socket is not None:
            self._socket.close()

"""The FastAPI app of `haul api`: JSON routes, pages, static files, and the poller loop.

The lifespan runs the failure poller on every cluster and follows redrives until shutdown, so
one `haul api` process is both the inbox's reader and its writer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.base import RequestResponseEndpoint

from app.api import pages, routes
from app.api.auth import Auth, LoginRequired
from app.api.inbox import Inbox

# Scripts and styles only from this origin; no framing; forms post only here.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
# /docs loads Swagger UI from a CDN (and inline script), so it gets a looser policy.
_DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
    "frame-ancestors 'none'"
)


def create_app(inbox: Inbox, auth: Auth, *, poll: bool = True) -> FastAPI:
    """The app over `inbox`; with `poll`, its lifespan runs the poller and redrive follow-up."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task = asyncio.create_task(inbox.run(stop), name="failure-poller") if poll else None
        try:
            yield
        finally:
            stop.set()
            if task is not None:
                await asyncio.gather(task, return_exceptions=True)

    app = FastAPI(
        title="haul failure inbox",
        summary="Every failed, timed-out, terminated or stuck workflow, grouped and redriven.",
        version="1",
        lifespan=lifespan,
    )
    app.state.inbox = inbox
    app.state.auth = auth
    app.include_router(routes.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, exc: LoginRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={pages.quote_next(target)}", 303)

    @app.middleware("http")
    async def headers(request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        docs = request.url.path in ("/docs", "/redoc")
        response.headers.setdefault("Content-Security-Policy", _DOCS_CSP if docs else _CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app

"""`haul api`: the failure inbox over HTTP: a JSON API, server-rendered pages, and the poller.

`create_app(inbox, auth)` builds the FastAPI app; `app.cli.api` serves it with uvicorn.
"""

from app.api.app import create_app

__all__ = ["create_app"]

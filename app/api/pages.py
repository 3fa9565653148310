"""The server-rendered pages: summary by group, failure lists, one failure, and sign-in.

Jinja2 templates from app/api/templates, no build step. Pages read through the same store as
the JSON API; their form posts go through the same redrive and status code, after the CSRF,
origin and session checks of app.api.auth.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any, cast
from urllib.parse import urlencode

from fastapi import APIRouter, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from app.api.auth import CSRF_COOKIE, SESSION_COOKIE, SESSION_SECONDS, Auth
from app.api.models import BulkRedriveRequest, FilterParams, RedriveRequest
from app.api.routes import auth, inbox, redrive_bulk, redrive_one
from app.platform.failures import GROUP_KEYS, GroupKey, NoSuchFailureError, StoredFailure
from app.platform.redrive import RedriveOptions

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
router = APIRouter(include_in_schema=False)
WINDOWS = [("1h", 1.0), ("24h", 24.0), ("7d", 168.0), ("all", None)]
_FILTER_FIELDS = [n for n in FilterParams.model_fields if n not in ("since", "until")]
Text = Annotated[str, Form()]


def _params(request: Request) -> FilterParams:
    raw = {k: v for k, v in request.query_params.items() if k in FilterParams.model_fields and v}
    try:
        return FilterParams.model_validate(raw)
    except ValueError:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "bad filter") from None


def _query(request: Request, **changes: Any) -> str:
    """This page's query string with some values changed (None drops one); a new view
    starts at its first page."""
    values = {k: v for k, v in request.query_params.items() if k != "offset"}
    for key, value in changes.items():
        if value is None:
            values.pop(key, None)
        else:
            values[key] = str(value)
    return urlencode(values)


def render(request: Request, name: str, context: dict[str, Any], code: int = 200) -> HTMLResponse:
    """A page with the signed-in state and a CSRF value, whose cookie is set alongside."""
    a: Auth = auth(request)
    csrf = a.csrf_value(request)
    response = templates.TemplateResponse(
        request,
        name,
        {
            "signed_in": a.signed_in(request),
            "can_change": a.token is not None,
            "csrf": csrf,
            "error": None,
            **context,
        },
        status_code=code,
    )
    response.set_cookie(
        CSRF_COOKIE,
        csrf,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request) -> HTMLResponse:
    auth(request).require_page_read(request)
    box = inbox(request)
    params = _params(request)
    by = request.query_params.get("by", "fingerprint")
    if by not in GROUP_KEYS:
        by = "fingerprint"
    groups = box.store.summary(box.filter(params), by=cast(GroupKey, by))

    def list_query(key: str) -> str:
        keep = {n: getattr(params, n) for n in _FILTER_FIELDS if getattr(params, n) is not None}
        keep[by if by in FilterParams.model_fields else "fingerprint"] = key
        return urlencode(keep)

    return render(
        request,
        "dashboard.html",
        {
            "by": by,
            "group_keys": GROUP_KEYS,
            "groups": groups,
            "total": sum(g.count for g in groups),
            "biggest": max((g.count for g in groups), default=1),
            "params": params,
            "windows": WINDOWS,
            "query": lambda **kw: _query(request, **kw),
            "list_query": list_query,
        },
    )


@router.get("/failures", response_class=HTMLResponse)
def failures(request: Request) -> HTMLResponse:
    auth(request).require_page_read(request)
    try:
        offset = max(0, int(request.query_params.get("offset", "0")))
    except ValueError:
        offset = 0
    return _list_page(request, _params(request), offset)


def _list_page(
    request: Request, params: FilterParams, offset: int, bulk: str | None = None
) -> HTMLResponse:
    box = inbox(request)
    limit = 50
    filt = box.filter(params)
    fields = [(n, getattr(params, n)) for n in _FILTER_FIELDS if getattr(params, n) is not None]
    return render(
        request,
        "failures.html",
        {
            "items": box.store.list(filt, limit=limit, offset=offset),
            "total": box.store.count(filt),
            "limit": limit,
            "offset": offset,
            "params": params,
            "filters": ", ".join(f"{n} = {v}" for n, v in fields if n != "status"),
            "filter_fields": fields,
            "max_bulk": box.max_bulk,
            "max_rate": box.max_redrive_rate,
            "ui_link": box.ui_link,
            "query": lambda **kw: urlencode(
                {**{n: str(v) for n, v in fields}, **{k: str(v) for k, v in kw.items()}}
            ),
            "bulk": bulk,
        },
    )


def _failure_page(
    request: Request, failure_id: int, error: str | None = None, code: int = 200
) -> HTMLResponse:
    box = inbox(request)
    try:
        f: StoredFailure = box.store.get(failure_id)
    except NoSuchFailureError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc.args[0])) from None
    return render(
        request,
        "failure.html",
        {
            "f": f,
            "ui": box.ui_link(f),
            "ui_run": lambda run_id: box.ui_link(f, run_id),
            "arguments": json.dumps(f.arguments, indent=2, default=str),
            "redrives": box.store.redrives(failure_id),
            "error": error,
        },
        code,
    )


@router.get("/failures/{failure_id}", response_class=HTMLResponse)
def failure(request: Request, failure_id: int) -> HTMLResponse:
    auth(request).require_page_read(request)
    return _failure_page(request, failure_id)


def _options(mode: str, reset_to: str, reapply_signals: str) -> RedriveOptions:
    try:
        return RedriveOptions.model_validate(
            {"mode": mode, "reset_to": reset_to, "reapply_signals": reapply_signals == "true"}
        )
    except ValueError:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "mode must be rerun or reset; reset_to first or last",
        ) from None


@router.post("/failures/{failure_id}/redrive")
async def redrive_form(
    request: Request,
    failure_id: int,
    csrf_token: Text = "",
    mode: Text = "rerun",
    reset_to: Text = "last",
    reapply_signals: Text = "",
) -> Response:
    auth(request).require_form_change(request, csrf_token)
    body = RedriveRequest(options=_options(mode, reset_to, reapply_signals))
    try:
        await redrive_one(inbox(request), failure_id, body)
    except HTTPException as exc:
        if exc.status_code != status.HTTP_409_CONFLICT:
            raise
        return await asyncio.to_thread(_failure_page, request, failure_id, exc.detail, 409)
    return RedirectResponse(f"/failures/{failure_id}", status.HTTP_303_SEE_OTHER)


@router.post("/failures/redrive", response_class=HTMLResponse)
async def redrive_filtered_form(request: Request) -> Response:
    form = await request.form()
    fields = {k: str(v) for k, v in form.items()}
    auth(request).require_form_change(request, fields.get("csrf_token", ""))
    try:
        body = BulkRedriveRequest(
            filter=FilterParams.model_validate(
                {k: v for k, v in fields.items() if k in _FILTER_FIELDS and v}
            ),
            options=_options(
                fields.get("mode", "rerun"),
                fields.get("reset_to", "last"),
                fields.get("reapply_signals", ""),
            ),
            per_second=float(fields.get("per_second", "5")),
            limit=int(fields.get("limit", "100")),
        )
    except ValueError as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"bad bulk redrive: {exc}"
        ) from None
    result = await redrive_bulk(inbox(request), body)
    return await asyncio.to_thread(
        _list_page, request, body.filter, 0, result.model_dump_json(indent=2)
    )


async def _status_form(
    request: Request, failure_id: int, to: str, csrf: str, note: str
) -> Response:
    auth(request).require_form_change(request, csrf)
    box = inbox(request)
    try:
        await asyncio.to_thread(
            box.store.set_status, failure_id, "open" if to == "open" else "resolved", note[:4000]
        )
    except NoSuchFailureError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc.args[0])) from None
    return RedirectResponse(f"/failures/{failure_id}", status.HTTP_303_SEE_OTHER)


@router.post("/failures/{failure_id}/resolve")
async def resolve_form(
    request: Request, failure_id: int, csrf_token: Text = "", note: Text = ""
) -> Response:
    return await _status_form(request, failure_id, "resolved", csrf_token, note)


@router.post("/failures/{failure_id}/reopen")
async def reopen_form(
    request: Request, failure_id: int, csrf_token: Text = "", note: Text = ""
) -> Response:
    return await _status_form(request, failure_id, "open", csrf_token, note)


def _safe_next(target: str) -> str:
    # Only a path on this site: "//host" and "/\\host" would leave it.
    local = target.startswith("/") and not target.startswith(("//", "/\\"))
    return target if local and "\\" not in target else "/"


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> HTMLResponse:
    return render(request, "login.html", {"next": _safe_next(next)})


@router.post("/login")
def login(request: Request, csrf_token: Text = "", token: Text = "", next: Text = "/") -> Response:
    a = auth(request)
    a.check_form_origin(request, csrf_token)
    if not a.token:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "no API token is configured")
    if not a.token_matches(token):
        context = {"next": _safe_next(next), "error": "That token is not the API token."}
        return render(request, "login.html", context, status.HTTP_401_UNAUTHORIZED)
    response = RedirectResponse(_safe_next(next), status.HTTP_303_SEE_OTHER)
    response.set_cookie(
        SESSION_COOKIE,
        a.new_session(),
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
def logout(request: Request, csrf_token: Text = "") -> Response:
    auth(request).check_form_origin(request, csrf_token)
    response = RedirectResponse("/", status.HTTP_303_SEE_OTHER)
    response.delete_cookie(SESSION_COOKIE)
    return response


def quote_next(target: str) -> str:
    """A path to come back to after signing in, as a query value."""
    return urlencode({"": target})[1:]

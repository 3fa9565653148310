"""The JSON API under /api/failures: summary, list, detail, redrive, resolve, reopen.

Reads are open or behind the token (HAUL_API_READ_AUTH); every change needs the bearer token.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, cast

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from app.api.auth import Auth
from app.api.inbox import Inbox
from app.api.models import (
    BulkRedriveRequest,
    FailureDetail,
    FailurePage,
    FilterParams,
    Note,
    RedriveDone,
    RedriveRequest,
    Summary,
)
from app.platform.failures import GROUP_KEYS, GroupKey, NoSuchFailureError, Redrive
from app.platform.redrive import BulkRedrive, redrive, redrive_matching


def inbox(request: Request) -> Inbox:
    return cast(Inbox, request.app.state.inbox)


def auth(request: Request) -> Auth:
    return cast(Auth, request.app.state.auth)


def can_read(request: Request) -> None:
    auth(request).require_read(request)


def can_change(request: Request) -> None:
    auth(request).require_bearer(request)


InboxDep = Annotated[Inbox, Depends(inbox)]
router = APIRouter(prefix="/api/failures", tags=["failures"])


def _missing(exc: NoSuchFailureError) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, str(exc.args[0]))


@router.get("/summary", dependencies=[Depends(can_read)])
def summary(
    box: InboxDep,
    params: Annotated[FilterParams, Query()],
    by: str = "fingerprint",
) -> Summary:
    """Failure counts per group (cause fingerprint, type, team, task queue or status), biggest
    first, within the filter and time window."""
    if by not in GROUP_KEYS:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"by={by!r}: group by one of {', '.join(GROUP_KEYS)}",
        )
    groups = box.store.summary(box.filter(params), by=cast(GroupKey, by))
    return Summary(by=by, total=sum(g.count for g in groups), groups=groups)


@router.get("", dependencies=[Depends(can_read)])
def list_failures(
    box: InboxDep,
    params: Annotated[FilterParams, Query()],
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> FailurePage:
    """Failures matching the filter, newest first, one page at a time."""
    filt = box.filter(params)
    items = box.store.list(filt, limit=limit, offset=offset)
    return FailurePage(total=box.store.count(filt), limit=limit, offset=offset, items=items)


@router.get("/{failure_id}", dependencies=[Depends(can_read)])
def detail(box: InboxDep, failure_id: int) -> FailureDetail:
    """One failure with its arguments, stack, notes, and every redrive with its outcome."""
    try:
        f = box.store.get(failure_id)
    except NoSuchFailureError as exc:
        raise _missing(exc) from None
    return FailureDetail(
        failure=f, redrives=box.store.redrives(failure_id), temporal_ui_url=box.ui_link(f)
    )


@router.get("/{failure_id}/redrives", dependencies=[Depends(can_read)])
def redrives(box: InboxDep, failure_id: int) -> list[Redrive]:
    """This failure's redrives: the new run, and its outcome once it closes (else Running)."""
    return box.store.redrives(failure_id)


async def redrive_one(box: Inbox, failure_id: int, body: RedriveRequest) -> RedriveDone:
    """Shared by the API and the pages: redrive, mapping refusals to HTTP errors."""
    try:
        run_id = await redrive(box.haul.router, box.store, failure_id, body.options)
    except NoSuchFailureError as exc:
        raise _missing(exc) from None
    except (ValueError, RPCError, WorkflowAlreadyStartedError) as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, f"not redriven: {exc}") from None
    f = await asyncio.to_thread(box.store.get, failure_id)
    return RedriveDone(
        failure_id=failure_id, new_run_id=run_id, temporal_ui_url=box.ui_link(f, run_id)
    )


@router.post("/{failure_id}/redrive", dependencies=[Depends(can_change)])
async def redrive_failure(
    box: InboxDep, failure_id: int, body: RedriveRequest | None = None
) -> RedriveDone:
    """Run one failure again: re-run with its original input (same ID), or reset to its first
    or last workflow task, with signals re-applied or not. The new run is linked and followed
    until it closes."""
    return await redrive_one(box, failure_id, body or RedriveRequest())


async def redrive_bulk(box: Inbox, body: BulkRedriveRequest) -> BulkRedrive:
    if body.per_second > box.max_redrive_rate:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"per_second={body.per_second}: at most {box.max_redrive_rate} "
            "(HAUL_API_MAX_REDRIVE_RATE)",
        )
    if body.limit > box.max_bulk:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"limit={body.limit}: at most {box.max_bulk} per call (HAUL_API_MAX_BULK)",
        )
    return await redrive_matching(
        box.haul.router,
        box.store,
        box.filter(body.filter),
        body.options,
        per_second=body.per_second,
        limit=body.limit,
    )


@router.post("/redrive", dependencies=[Depends(can_change)])
async def redrive_filtered(box: InboxDep, body: BulkRedriveRequest) -> BulkRedrive:
    """Redrive every open failure matching the filter, at most `per_second` a second and
    `limit` in all; says which were redriven and why the others were refused."""
    return await redrive_bulk(box, body)


def _set_status(box: Inbox, failure_id: int, to: str, note: str) -> FailureDetail:
    try:
        box.store.set_status(failure_id, "open" if to == "open" else "resolved", note)
    except NoSuchFailureError as exc:
        raise _missing(exc) from None
    return detail(box, failure_id)


@router.post("/{failure_id}/resolve", dependencies=[Depends(can_change)])
def resolve(box: InboxDep, failure_id: int, body: Note | None = None) -> FailureDetail:
    """Mark a failure resolved, appending the note to its notes."""
    return _set_status(box, failure_id, "resolved", (body or Note()).note)


@router.post("/{failure_id}/reopen", dependencies=[Depends(can_change)])
def reopen(box: InboxDep, failure_id: int, body: Note | None = None) -> FailureDetail:
    """Open a resolved failure again, appending the note to its notes."""
    return _set_status(box, failure_id, "open", (body or Note()).note)

"""The failure store: one record per failed, timed-out, terminated, cancelled or stuck run.

The poller (app.platform.failure_poller) fills it from visibility and history; the worker
interceptor (app.platform.failure_interceptor) only adds what a worker alone knows. Records are
keyed by (cluster, namespace, workflow ID, run ID): a repeat from either source, or from an
overlapping poll, is a no-op. Each carries the original input payloads, so a redrive
(app.platform.redrive) starts exactly what the failed run was given.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row
from pydantic import BaseModel, Field

from app.platform.fingerprint import fingerprint

CLOSE_STATUSES = ("Failed", "TimedOut", "Terminated", "Canceled")
STUCK = "Stuck"
GROUP_KEYS = ("fingerprint", "workflow_type", "owner_team", "task_queue", "close_status")
GroupKey = Literal["fingerprint", "workflow_type", "owner_team", "task_queue", "close_status"]


class FailureRecord(BaseModel):
    """What either source knows about one failed run."""

    cluster: str
    namespace: str
    workflow_id: str
    run_id: str
    workflow_type: str
    task_queue: str
    owner_team: str = ""
    close_status: str = "Failed"
    arguments: list[Any] = Field(default_factory=list)
    input_payloads: list[dict[str, Any]] = Field(default_factory=list)
    error_type: str
    error_message: str
    failure_stack: str = ""
    attempt: int = 1
    parent_workflow_id: str | None = None
    parent_run_id: str | None = None
    failed_at: datetime | None = None

    def cause(self) -> str:
        """The fingerprint of this failure's cause (see app.platform.fingerprint)."""
        return fingerprint(self.error_type, self.error_message)


class StoredFailure(FailureRecord):
    id: int
    fingerprint: str
    status: Literal["open", "resolved"]
    notes: str
    failed_at: datetime
    closed_at: datetime | None = None
    recorded_at: datetime | None = None
    redriven_at: datetime | None = None
    redrive_run_id: str | None = None


class Redrive(BaseModel):
    """One redrive of a failure, linked to the run it started (or the run a reset made)."""

    id: int
    failure_id: int
    mode: str
    new_run_id: str
    # A reset's point and whether signals and updates were re-applied; None for a re-run.
    reset_to: str | None = None
    reapply_signals: bool | None = None
    outcome: str
    requested_at: datetime
    closed_at: datetime | None = None


class FailureFilter(BaseModel):
    """Which records a list, summary or bulk redrive covers; None means any. Every field but
    the time window is a column of the same name (the API's filter adds to these fields)."""

    status: Literal["open", "resolved"] | None = "open"
    cluster: str | None = None
    namespace: str | None = None
    workflow_type: str | None = None
    owner_team: str | None = None
    task_queue: str | None = None
    fingerprint: str | None = None
    close_status: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def where(self) -> tuple[str, list[Any]]:
        clauses, params = [], []
        for column in FailureFilter.model_fields:
            if column in ("since", "until"):
                continue
            value = getattr(self, column)
            if value is not None:
                clauses.append(f"{column} = %s")
                params.append(value)
        if self.since is not None:
            clauses.append("failed_at >= %s")
            params.append(self.since)
        if self.until is not None:
            clauses.append("failed_at < %s")
            params.append(self.until)
        return ("where " + " and ".join(clauses)) if clauses else "", params


class Group(BaseModel):
    key: str
    error_type: str
    sample_message: str
    count: int
    first_at: datetime
    last_at: datetime


class NoSuchFailureError(KeyError):
    """The ID names no stored failure."""


_UPSERT = """
insert into workflow_failures (cluster, namespace, workflow_id, run_id, workflow_type,
    task_queue, owner_team, close_status, arguments, input_payloads, error_type, error_message,
    failure_stack, attempt, parent_workflow_id, parent_run_id, fingerprint, failed_at, closed_at)
values (%(cluster)s, %(namespace)s, %(workflow_id)s, %(run_id)s, %(workflow_type)s,
    %(task_queue)s, %(owner_team)s, %(close_status)s, %(arguments)s, %(input_payloads)s,
    %(error_type)s, %(error_message)s, %(failure_stack)s, %(attempt)s, %(parent_workflow_id)s,
    %(parent_run_id)s, %(fingerprint)s, coalesce(%(failed_at)s, now()), %(closed_at)s)
on conflict (cluster, namespace, workflow_id, run_id) do update set
    close_status = excluded.close_status, error_type = excluded.error_type,
    error_message = excluded.error_message, failure_stack = excluded.failure_stack,
    fingerprint = excluded.fingerprint, closed_at = excluded.closed_at, updated_at = now(),
    recorded_at = now()
where workflow_failures.close_status = 'Stuck' and excluded.close_status <> 'Stuck'
returning id
"""


@dataclass
class FailureStore:
    dsn: str

    def _connect(self) -> psycopg.Connection[dict[str, Any]]:
        return psycopg.connect(self.dsn, row_factory=dict_row, autocommit=True)

    def record(self, rec: FailureRecord) -> bool:
        """Store a failure; True when that changed anything (new, or a stuck run closed)."""
        return self.record_many([rec]) == 1

    def record_many(self, recs: Iterable[FailureRecord]) -> int:
        """Store failures in one transaction; return how many were new or changed."""
        changed = 0
        with self._connect() as conn, conn.transaction():
            for rec in recs:
                params = rec.model_dump()
                params["arguments"] = json.dumps(rec.arguments)
                params["input_payloads"] = json.dumps(rec.input_payloads)
                params["fingerprint"] = rec.cause()
                params["closed_at"] = rec.failed_at if rec.close_status != STUCK else None
                changed += conn.execute(_UPSERT, params).fetchone() is not None
        return changed

    def recorded_keys(
        self, cluster: str, namespace: str, run_ids: builtins.list[str], *, closed: bool = False
    ) -> set[str]:
        """Run IDs among `run_ids` already recorded (with `closed`: recorded as closed, not
        stuck); the poller reads no history for those."""
        extra = " and close_status <> 'Stuck'" if closed else ""
        with self._connect() as conn:
            rows = conn.execute(
                "select run_id from workflow_failures where cluster = %s and namespace = %s "
                "and run_id = any(%s)" + extra,
                (cluster, namespace, run_ids),
            ).fetchall()
        return {r["run_id"] for r in rows}

    def high_water(self, cluster: str, namespace: str) -> datetime | None:
        with self._connect() as conn:
            row = conn.execute(
                "select high_water from failure_watermarks where cluster = %s and namespace = %s",
                (cluster, namespace),
            ).fetchone()
        return row["high_water"] if row else None

    def advance(self, cluster: str, namespace: str, to: datetime) -> None:
        """Move the high-water mark forward (never back)."""
        with self._connect() as conn:
            conn.execute(
                """insert into failure_watermarks (cluster, namespace, high_water)
                   values (%s, %s, %s)
                   on conflict (cluster, namespace) do update
                   set high_water = greatest(failure_watermarks.high_water, excluded.high_water),
                       updated_at = now()""",
                (cluster, namespace, to),
            )

    def list(
        self, filt: FailureFilter | None = None, *, limit: int = 100, offset: int = 0
    ) -> builtins.list[StoredFailure]:
        """Failures matching `filt` (default: open), newest first."""
        sql, params = self.list_query(filt, limit=limit, offset=offset)
        with self._connect() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [StoredFailure.model_validate(r) for r in rows]

    def count(self, filt: FailureFilter | None = None) -> int:
        where, params = (filt or FailureFilter()).where()
        with self._connect() as conn:
            row = conn.execute(f"select count(*) as n from workflow_failures {where}", params)
            return int(row.fetchone()["n"])  # type: ignore[index]

    def summary(
        self, filt: FailureFilter | None = None, by: GroupKey = "fingerprint"
    ) -> builtins.list[Group]:
        """Counts per group, biggest first, with the newest failure's type and message as the
        sample, and the time span."""
        sql, params = self.summary_query(filt, by)
        with self._connect() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [Group.model_validate(r) for r in rows]

    @staticmethod
    def summary_query(
        filt: FailureFilter | None = None, by: GroupKey = "fingerprint"
    ) -> tuple[str, builtins.list[Any]]:
        """The summary's SQL. Counts and times come from the (key, status, failed_at) index
        alone; only each group's newest row is read for its sample (one row per group)."""
        if by not in GROUP_KEYS:
            raise ValueError(f"cannot group by {by!r}; choose one of {', '.join(GROUP_KEYS)}")
        where, params = (filt or FailureFilter()).where()
        sample_where = f"{where} and {by} = g.key" if where else f"where {by} = g.key"
        sql = f"""select g.key, s.error_type, s.error_message as sample_message, g.count,
                       g.first_at, g.last_at
                  from (select {by} as key, count(*) as count, min(failed_at) as first_at,
                               max(failed_at) as last_at
                        from workflow_failures {where} group by {by}) g
                  cross join lateral (
                      select error_type, error_message from workflow_failures {sample_where}
                      order by failed_at desc limit 1) s
                  order by g.count desc, g.key"""
        return sql, [*params, *params]

    @staticmethod
    def list_query(
        filt: FailureFilter | None = None, *, limit: int = 100, offset: int = 0
    ) -> tuple[str, builtins.list[Any]]:
        """The list's SQL: newest first, id as the tie-break."""
        where, params = (filt or FailureFilter()).where()
        return (
            f"select * from workflow_failures {where} order by failed_at desc, id desc "
            "limit %s offset %s",
            [*params, limit, offset],
        )

    def get(self, failure_id: int) -> StoredFailure:
        with self._connect() as conn:
            row = conn.execute(
                "select * from workflow_failures where id = %s", (failure_id,)
            ).fetchone()
        if row is None:
            raise NoSuchFailureError(
                f"no failure with id {failure_id}; `haul failures list` shows them"
            )
        return StoredFailure.model_validate(row)

    def set_status(self, failure_id: int, status: Literal["open", "resolved"], note: str) -> None:
        """Resolve or reopen a failure, appending the note (if any) to its notes."""
        with self._connect() as conn:
            done = conn.execute(
                """update workflow_failures set status = %s, updated_at = now(),
                       notes = case when %s = '' then notes
                                    else notes || case when notes = '' then '' else E'\n' end
                                         || %s end
                   where id = %s returning id""",
                (status, note, note, failure_id),
            ).fetchone()
        if done is None:
            raise NoSuchFailureError(f"no failure with id {failure_id}")

    def reopen(self, failure_id: int, note: str = "") -> bool:
        """Open a resolved failure again (its cause came back, or the fix did not hold), with
        the note appended; False when it was already open, which changes nothing."""
        current = self.get(failure_id)
        if current.status == "open":
            return False
        self.set_status(failure_id, "open", note)
        return True

    def add_redrive(
        self,
        failure_id: int,
        mode: str,
        new_run_id: str,
        requested_at: datetime | None = None,
        *,
        reset_to: str | None = None,
        reapply_signals: bool | None = None,
    ) -> int:
        """Link a failure to the run its redrive started; `requested_at` (default now) is when
        the redrive was let through, which a bulk redrive's pace is judged by."""
        with self._connect() as conn, conn.transaction():
            conn.execute(
                "update workflow_failures set redriven_at = coalesce(%s, now()), "
                "redrive_run_id = %s where id = %s",
                (requested_at, new_run_id, failure_id),
            )
            row = conn.execute(
                """insert into failure_redrives
                       (failure_id, mode, new_run_id, requested_at, reset_to, reapply_signals)
                   values (%s, %s, %s, coalesce(%s, now()), %s, %s) returning id""",
                (failure_id, mode, new_run_id, requested_at, reset_to, reapply_signals),
            ).fetchone()
        return int(row["id"])  # type: ignore[index]

    def redrive_candidates(self, filt: FailureFilter, limit: int) -> builtins.list[StoredFailure]:
        """Up to `limit` failures matching `filt`, oldest first, that have no redrive running
        or completed: what a bulk redrive by that filter would take."""
        where, params = filt.where()
        live = (
            "not exists (select 1 from failure_redrives r where r.failure_id = workflow_failures.id"
            " and r.outcome in ('Running', 'Completed'))"
        )
        where = f"{where} and {live}" if where else f"where {live}"
        with self._connect() as conn:
            rows = conn.execute(
                f"select * from workflow_failures {where} order by failed_at, id limit %s",
                [*params, limit],
            ).fetchall()
        return [StoredFailure.model_validate(r) for r in rows]

    def redrives(
        self, failure_id: int | None = None, *, open_only: bool = False
    ) -> builtins.list[Redrive]:
        clauses, params = [], []
        if failure_id is not None:
            clauses.append("failure_id = %s")
            params.append(failure_id)
        if open_only:
            clauses.append("closed_at is null")
        where = ("where " + " and ".join(clauses)) if clauses else ""
        with self._connect() as conn:
            rows = conn.execute(
                f"select * from failure_redrives {where} order by id", params
            ).fetchall()
        return [Redrive.model_validate(r) for r in rows]

    def close_redrive(self, redrive_id: int, outcome: str, closed_at: datetime) -> None:
        with self._connect() as conn:
            conn.execute(
                "update failure_redrives set outcome = %s, closed_at = %s where id = %s",
                (outcome, closed_at, redrive_id),
            )

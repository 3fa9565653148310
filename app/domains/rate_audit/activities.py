"""Rate-audit activities: audit batches of charge groups, and recompute a shipment job's status.

Both are idempotent: findings are upserted by charge-group key, and job events by event ID, so a
retried activity changes nothing it already did.
"""

from __future__ import annotations

import json
import threading
import time
from decimal import Decimal
from typing import Any

import psycopg
from temporalio.exceptions import ApplicationError

from app.core.database import Database, DatabaseNotConfiguredError, is_connection_error
from app.domains.rate_audit import DOMAIN
from app.domains.rate_audit.models import (
    REVISIONS_EVENT,
    AuditBatchInput,
    AuditBatchResult,
    AuditSlicesInput,
    AuditSlicesResult,
    JobEvent,
    JobEventsInput,
    JobStatus,
)
from app.domains.rate_audit.rates import AuditCharge, AuditGroup, ContractRate, Finding, audit_group
from app.platform.domain import activity_method
from app.platform.heartbeat import PacedHeartbeat
from app.platform.worker import WorkerContext

HEARTBEAT_EVERY = 200  # charge groups
RATE_CACHE_SECONDS = 60.0
FETCH_ROWS = 5_000


def load_rates(conn: psycopg.Connection[Any], carrier: str) -> list[ContractRate]:
    rows = conn.execute(
        """select carrier, service, zone, weight_break, rate_per_unit, minimum, currency
           from contract_rates where carrier = %s""",
        (carrier.upper(),),
    ).fetchall()
    return [ContractRate(*row) for row in rows]


def seed_contracts(conn: psycopg.Connection[Any], rates: list[ContractRate]) -> int:
    """Upsert contract rates (the shipped samples, or a carrier's contract); return the count."""
    with conn.cursor() as cur:
        cur.executemany(
            """insert into contract_rates (carrier, service, zone, weight_break, rate_per_unit,
                   minimum, currency) values (%s, %s, %s, %s, %s, %s, %s)
               on conflict (carrier, service, zone, weight_break) do update set
                   rate_per_unit = excluded.rate_per_unit, minimum = excluded.minimum,
                   currency = excluded.currency""",
            [
                (
                    r.carrier,
                    r.service,
                    r.zone,
                    r.weight_break,
                    r.rate_per_unit,
                    r.minimum,
                    r.currency,
                )
                for r in rates
            ],
        )
    return len(rates)


def _write_findings(conn: psycopg.Connection[Any], revision_id: int, found: list[Finding]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            """insert into audit_findings (group_id, revision_id, billed, expected, difference,
                   currency, discrepancy, reasons)
               values (%s, %s, %s, %s, %s, %s, %s, %s)
               on conflict (group_id) do update set billed = excluded.billed,
                   expected = excluded.expected, difference = excluded.difference,
                   discrepancy = excluded.discrepancy, reasons = excluded.reasons,
                   audited_at = now()""",
            [
                (
                    f.group_id,
                    revision_id,
                    f.billed,
                    f.expected,
                    f.difference,
                    f.currency,
                    f.discrepancy,
                    list(f.reasons),
                )
                for f in found
            ],
        )


@DOMAIN.activities
class RateAuditActivities:
    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self._rates: dict[str, tuple[float, list[ContractRate]]] = {}
        self._lock = threading.Lock()

    @property
    def db(self) -> Database:
        """The worker context's pool, shared with the parcel activities."""
        try:
            return self.ctx.database()
        except DatabaseNotConfiguredError as err:  # a retry on this worker fails alike
            raise ApplicationError(f"the worker is misconfigured: {err}",
                                   type="HaulConfigurationError", non_retryable=True) from None

    def rates_for(self, conn: psycopg.Connection[Any], carrier: str) -> list[ContractRate]:
        with self._lock:
            cached = self._rates.get(carrier)
        if cached and time.monotonic() - cached[0] < RATE_CACHE_SECONDS:
            return cached[1]
        rates = load_rates(conn, carrier)
        with self._lock:
            self._rates[carrier] = (time.monotonic(), rates)
        return rates

    @activity_method
    def audit_charge_groups(self, input: AuditBatchInput) -> AuditBatchResult:
        """Audit one batch of a revision's charge groups against the contract rates.

        Streams the groups from Postgres, heartbeats when it runs long, and upserts one finding
        per charge group, so a retried batch rewrites the same rows."""
        with self.db.connect() as conn:
            groups, discrepancies = self._audit(
                conn, input.revision_id, input.first_sequence, input.last_sequence,
                PacedHeartbeat(),
            )
        return AuditBatchResult(groups=groups, discrepancies=discrepancies)

    @activity_method
    def audit_slices(self, input: AuditSlicesInput) -> AuditSlicesResult:
        """Audit one batch of a packed run: slices of several revisions, one after another.

        A revision whose audit fails for a reason of its own is reported, not raised, so its
        siblings' findings stand and the run sends it alone to a child of its own; a database
        that cannot be reached fails the whole batch, which Temporal retries."""
        result = AuditSlicesResult()
        beat = PacedHeartbeat()
        with self.db.connect() as conn:
            for piece in input.slices:
                if piece.r in result.failed:
                    continue
                try:
                    groups, discrepancies = self._audit(conn, piece.r, piece.first, piece.last,
                                                        beat)
                except Exception as err:
                    if is_connection_error(err):
                        raise
                    result.failed[piece.r] = f"{type(err).__name__}: {err}"[:300]
                    continue
                result.groups += groups
                result.discrepancies += discrepancies
        return result

    def _audit(self, conn: psycopg.Connection[Any], revision_id: int, first: int, last: int,
               beat: PacedHeartbeat) -> tuple[int, int]:
        """(groups, discrepancies) of one revision's groups first..last, findings upserted."""
        groups = discrepancies = 0
        head = conn.execute(
            "select carrier, currency from parcel_invoice_revisions where id = %s",
            (revision_id,),
        ).fetchone()
        if head is None:
            raise ValueError(f"no invoice revision {revision_id}; normalize it first")
        carrier, currency = str(head[0]), str(head[1])
        rates = self.rates_for(conn, carrier)
        found: list[Finding] = []
        current: AuditGroup | None = None

        def close(group: AuditGroup | None) -> None:
            nonlocal groups, discrepancies
            if group is None:
                return
            finding = audit_group(group, rates)
            found.append(finding)
            groups += 1
            discrepancies += finding.discrepancy
            if groups % HEARTBEAT_EVERY == 0:
                beat(groups)

        with conn.transaction(), conn.cursor(name="audit_groups") as cur:
            cur.itersize = FETCH_ROWS
            cur.execute(
                """select g.id, g.service, g.zone, g.weight, c.code, c.amount, c.is_credit,
                          c.needs_review, c.review_reason
                   from parcel_charge_groups g
                   left join parcel_charges c on c.group_id = g.id
                   where g.revision_id = %s and g.sequence between %s and %s
                   order by g.sequence, c.ordinal""",
                (revision_id, first, last),
            )
            for rows, (gid, service, zone, weight, code, amount, credit, review,
                       reason) in enumerate(cur, start=1):
                if rows % FETCH_ROWS == 0:
                    beat(groups, rows)  # inside a long group too, not only between groups
                if current is None or current.group_id != gid:
                    close(current)
                    current = AuditGroup(gid, carrier, service, zone, weight, currency)
                if code is not None:  # folded as it comes: a group is never held whole
                    current.add(AuditCharge(code, Decimal(amount), credit, review, reason))
            close(current)
        for start in range(0, len(found), 1_000):
            _write_findings(conn, revision_id, found[start : start + 1_000])
        return groups, discrepancies

    @activity_method
    def apply_shipment_job_events(self, input: JobEventsInput) -> JobStatus:
        """Record the job's new events (once each, by ID) and recompute its audit status."""
        with self.db.connect() as conn, conn.transaction():
            with conn.cursor() as cur:
                cur.executemany(
                    """insert into shipment_job_events (event_id, job_key, kind, payload)
                       values (%s, %s, %s, %s) on conflict (event_id) do nothing""",
                    [(event_id, input.job_key, kind, json.dumps(payload))
                     for event_id, kind, payload in _event_rows(input.events)],
                )
            conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (input.job_key,))
            return recompute_job(conn, input.job_key)


def _event_rows(events: list[JobEvent]) -> list[tuple[str, str, dict[str, Any]]]:
    """(event ID, kind, payload) rows to record: a coalesced revisions event becomes one
    invoice_revision row per revision, keyed by revision as a per-invoice event is."""
    rows: list[tuple[str, str, dict[str, Any]]] = []
    for event in events:
        if event.kind == REVISIONS_EVENT:
            rows += [(f"revision:{rid}", "invoice_revision", {"revision_id": rid})
                     for rid in event.payload.get("revision_ids", [])]
        else:
            rows.append((event.event_id, event.kind, event.payload))
    return rows


def recompute_job(conn: psycopg.Connection[Any], job_key: str) -> JobStatus:
    """A job's audit status from everything recorded about it.

    void: every invoice revision it has heard of belongs to a voided invoice; in_review: open
    review items on revisions in force; paid: payments cover what is billed; audited: revisions
    in force and nothing open; pending: no invoice yet."""
    row = conn.execute(
        """with ev as (select kind, payload from shipment_job_events where job_key = %s),
           revs as (
               select r.id, r.status, i.status as invoice_status, r.charges_total
               from parcel_invoice_revisions r join parcel_invoices i on i.id = r.invoice_id
               where r.id in (select (payload->>'revision_id')::bigint from ev
                              where kind = 'invoice_revision'))
           select
               (select count(*) from ev where kind = 'invoice_revision'),
               (select count(*) from ev where kind = 'task_completed'),
               (select coalesce(sum((payload->>'amount')::numeric), 0) from ev
                where kind = 'payment'),
               (select coalesce(sum(charges_total), 0) from revs
                where status = 'current' and invoice_status = 'active'),
               (select count(*) from review_queue where status = 'open'
                and revision_id in (select id from revs)),
               (select count(*) from revs),
               (select count(*) from revs where invoice_status = 'void'),
               (select count(*) from ev)""",
        (job_key,),
    ).fetchone()
    assert row is not None
    revisions, tasks, paid, billed, open_reviews, known, voided, applied = row
    if known and voided == known:
        status = "void"
    elif open_reviews:
        status = "in_review"
    elif billed > 0 and paid >= billed:
        status = "paid"
    elif known:
        status = "audited"
    else:
        status = "pending"
    conn.execute(
        """insert into shipment_jobs (job_key, audit_status, revisions, tasks_done, paid, billed,
               open_reviews, events_applied)
           values (%s, %s, %s, %s, %s, %s, %s, %s)
           on conflict (job_key) do update set audit_status = excluded.audit_status,
               revisions = excluded.revisions, tasks_done = excluded.tasks_done,
               paid = excluded.paid, billed = excluded.billed,
               open_reviews = excluded.open_reviews, events_applied = excluded.events_applied,
               updated_at = now()""",
        (job_key, status, revisions, tasks, paid, billed, open_reviews, applied),
    )
    return JobStatus(
        job_key=job_key,
        audit_status=status,
        revisions=int(revisions),
        tasks_done=int(tasks),
        paid=str(paid),
        billed=str(billed),
        open_reviews=int(open_reviews),
        events_applied=int(applied),
    )

"""The parcel tables in Postgres: idempotent upserts behind unique constraints.

Every write here may run twice (an activity retried after a worker died mid-call), so each one
is an upsert on a natural key:
- the invoice on (SCAC, account, invoice number, invoice date);
- its revision on (file hash, index in file): the same file never adds a second revision;
- charge groups on (revision, LX sequence) and charges on (group, ordinal), written only with
  a revision created in the same transaction (charges by COPY, as they stream in);
- audit findings and review items on the charge group.
A revision's rows are written in one transaction, so a retry never sees half an invoice.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

import psycopg

from app.domains.parcel.models import job_key_of
from app.formats.invoice import (
    Charge,
    ChargeChunk,
    ChargeGroup,
    InvoiceFailure,
    InvoiceHeader,
    InvoiceSummary,
)

ROW_CHUNK = 1_000


# --------------------------------------------------------------------------------------------
# files and failures
# --------------------------------------------------------------------------------------------


def upsert_file(
    conn: psycopg.Connection[Any],
    *,
    content_hash: str,
    workflow_id: str,
    file_name: str,
    carrier: str,
    format: str,
    invoice_count: int,
    charge_count: int,
    envelope_issues: list[str],
) -> None:
    conn.execute(
        """insert into parcel_files (content_hash, workflow_id, file_name, carrier, format,
               invoice_count, charge_count, envelope_issues)
           values (%s, %s, %s, %s, %s, %s, %s, %s)
           on conflict (content_hash) do update set
               invoice_count = excluded.invoice_count, charge_count = excluded.charge_count,
               format = excluded.format, envelope_issues = excluded.envelope_issues""",
        (
            content_hash,
            workflow_id,
            file_name,
            carrier,
            format,
            invoice_count,
            charge_count,
            json.dumps(envelope_issues),
        ),
    )


def file_name(conn: psycopg.Connection[Any], content_hash: str) -> str:
    """The name a file was submitted under ('' when it has none)."""
    row = conn.execute(
        "select file_name from parcel_files where content_hash = %s", (content_hash,)
    ).fetchone()
    return str(row[0]) if row else ""


def record_invoice_failure(
    conn: psycopg.Connection[Any], content_hash: str, failure: InvoiceFailure
) -> None:
    conn.execute(
        """insert into parcel_invoice_failures (file_hash, file_index, invoice_number, error_type,
               message, segment, position)
           values (%s, %s, %s, %s, %s, %s, %s)
           on conflict (file_hash, file_index) do update set
               error_type = excluded.error_type, message = excluded.message""",
        (
            content_hash,
            failure.index,
            failure.invoice_number,
            failure.error_type,
            failure.message,
            failure.segment,
            failure.position,
        ),
    )


# --------------------------------------------------------------------------------------------
# normalization
# --------------------------------------------------------------------------------------------


def _upsert_invoice(conn: psycopg.Connection[Any], header: InvoiceHeader) -> int:
    row = conn.execute(
        """insert into parcel_invoices (scac, account, invoice_number, invoice_date)
           values (%s, %s, %s, %s)
           on conflict (scac, account, invoice_number, invoice_date)
           do update set updated_at = parcel_invoices.updated_at
           returning id""",
        (header.scac, header.account, header.invoice_number, header.invoice_date),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _insert_revision(
    conn: psycopg.Connection[Any], invoice_id: int, content_hash: str, header: InvoiceHeader
) -> tuple[int, bool]:
    """(revision id, created now); an existing revision for (file, index) is reused."""
    row = conn.execute(
        """insert into parcel_invoice_revisions (invoice_id, file_hash, file_index, purpose,
               carrier, shipment_id, payment_method, currency, net_amount_due,
               charges_total, group_count, charge_count, header)
           values (%s, %s, %s, %s, %s, %s, %s, %s, %s, 0, 0, 0, %s)
           on conflict (file_hash, file_index) do nothing
           returning id""",
        (
            invoice_id,
            content_hash,
            header.index,
            header.purpose.value,
            header.scac,
            header.shipment_id,
            header.payment_method,
            header.currency,
            header.net_amount_due,
            header.model_dump_json(),
        ),
    ).fetchone()
    if row is not None:
        return int(row[0]), True
    existing = conn.execute(
        "select id from parcel_invoice_revisions where file_hash = %s and file_index = %s",
        (content_hash, header.index),
    ).fetchone()
    assert existing is not None
    return int(existing[0]), False


_CHARGE_COLUMNS = ("group_id, ordinal, line_number, code, description, amount, currency, rate, "
                   "is_credit, needs_review, review_reason")


class _RevisionRows:
    """Writes one new revision's groups and charges as they stream in, in batches of about
    ``ROW_CHUNK`` rows: small groups are inserted together, and a long group that arrives in
    chunks gets its row at its first chunk (its fields and total are set when it ends), so
    nothing ever holds more than a batch. Charges go in with COPY: the revision was created in
    this transaction, so none of its rows can exist yet."""

    def __init__(self, conn: psycopg.Connection[Any], revision_id: int, currency: str,
                 heartbeat: Callable[..., None] | None) -> None:
        self.conn, self.revision_id, self.currency = conn, revision_id, currency
        self.heartbeat = heartbeat or (lambda *_: None)
        self.batch: list[ChargeGroup] = []
        self.batch_rows = 0
        self.charges = 0  # written so far, for the heartbeat's details
        # the long group being written: (sequence, group id, next ordinal, running total)
        self.open: tuple[int, int, int, Decimal] | None = None

    def add(self, item: ChargeChunk | ChargeGroup) -> None:
        if isinstance(item, ChargeChunk):
            self._chunk(item)
        elif self.open is not None and self.open[0] == item.sequence:
            self._end_open(item)
        else:
            self.batch.append(item)
            self.batch_rows += len(item.charges) + 1
            if self.batch_rows >= ROW_CHUNK:
                self.flush()

    def _chunk(self, chunk: ChargeChunk) -> None:
        if self.open is None or self.open[0] != chunk.sequence:
            self.flush()
            row = self.conn.execute(
                """insert into parcel_charge_groups (revision_id, sequence, group_key, total)
                   values (%s, %s, %s, 0) returning id""",
                (self.revision_id, chunk.sequence, chunk.key),
            ).fetchone()
            assert row is not None
            self.open = (chunk.sequence, int(row[0]), 1, Decimal("0.00"))
        sequence, group_id, ordinal, total = self.open
        self._copy([(group_id, ordinal, chunk.charges)])
        total += sum((c.amount for c in chunk.charges), Decimal("0.00"))
        self.open = (sequence, group_id, ordinal + len(chunk.charges), total)
        self.heartbeat(sequence, self.charges)

    def _end_open(self, group: ChargeGroup) -> None:
        assert self.open is not None
        _, group_id, ordinal, total = self.open
        self.open = None
        if group.charges:
            self._copy([(group_id, ordinal, group.charges)])
        self.conn.execute(
            """update parcel_charge_groups set group_key = %s, service = %s, zone = %s,
                   weight = %s, weight_unit = %s, description = %s, total = %s
               where id = %s""",
            (group.key, group.service, group.zone, group.weight, group.weight_unit,
             group.description, total + group.total, group_id),
        )

    def flush(self) -> None:
        """Write the batch of whole groups."""
        groups, self.batch, self.batch_rows = self.batch, [], 0
        if not groups:
            return
        with self.conn.cursor() as cur:
            cur.executemany(
                """insert into parcel_charge_groups (revision_id, sequence, group_key, service,
                       zone, weight, weight_unit, description, total)
                   values (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                [(self.revision_id, g.sequence, g.key, g.service, g.zone, g.weight,
                  g.weight_unit, g.description, g.total) for g in groups],
            )
            ids = dict(cur.execute(
                """select sequence, id from parcel_charge_groups
                   where revision_id = %s and sequence between %s and %s""",
                (self.revision_id, groups[0].sequence, groups[-1].sequence),
            ).fetchall())
        self._copy([(ids[g.sequence], 1, g.charges) for g in groups])
        self.heartbeat(groups[-1].sequence, self.charges)

    def _copy(self, runs: list[tuple[int, int, list[Charge]]]) -> None:
        """COPY charges: (group id, first ordinal, charges) runs."""
        with self.conn.cursor() as cur, cur.copy(
            f"copy parcel_charges ({_CHARGE_COLUMNS}) from stdin"
        ) as copy:
            for group_id, first, charges in runs:
                for n, c in enumerate(charges, start=first):
                    copy.write_row((group_id, n, c.line_number, c.code, c.description, c.amount,
                                    self.currency, c.rate, c.is_credit, c.needs_review,
                                    c.review_reason))
                self.charges += len(charges)


def write_revision(
    conn: psycopg.Connection[Any],
    content_hash: str,
    header: InvoiceHeader,
    groups: Iterable[ChargeChunk | ChargeGroup],
    summary: Callable[[], InvoiceSummary],
    heartbeat: Callable[..., None] | None = None,
) -> tuple[int, int]:
    """Write one invoice revision with its groups and charges in one transaction.

    `groups` is consumed as a stream (a long group as chunks of its charges, then the group);
    rows are written in batches as they come, with a heartbeat (group sequence, charges
    written) after each. `summary()` is called once the stream is exhausted. Returns
    (invoice id, revision id). Safe to repeat: a second call finds the revision and adds
    nothing (the first one's rows were committed whole, or not at all)."""
    with conn.transaction():
        invoice_id = _upsert_invoice(conn, header)
        revision_id, created = _insert_revision(conn, invoice_id, content_hash, header)
        if created:
            rows = _RevisionRows(conn, revision_id, header.currency, heartbeat)
            for item in groups:
                rows.add(item)
            rows.flush()
            totals = summary()
            conn.execute(
                """update parcel_invoice_revisions set declared_total = %s, charges_total = %s,
                       group_count = %s, charge_count = %s where id = %s""",
                (
                    totals.declared_total,
                    totals.charges_total,
                    totals.group_count,
                    totals.charge_count,
                    revision_id,
                ),
            )
    return invoice_id, revision_id


def apply_revisions(conn: psycopg.Connection[Any], invoice_id: int) -> int:
    """Decide which revision of an invoice is in force; return it.

    Revisions are ordered by the file's arrival and the invoice's place in it, whatever order
    they were processed in. A cancel voids the invoice; otherwise the latest change supersedes
    everything before it, or else the latest original stands. Open review items of revisions
    no longer in force are voided."""
    with conn.transaction():
        conn.execute("select id from parcel_invoices where id = %s for update", (invoice_id,))
        revisions = conn.execute(
            """select r.id, r.purpose from parcel_invoice_revisions r
               join parcel_files f on f.content_hash = r.file_hash
               where r.invoice_id = %s order by f.seq, r.file_index""",
            (invoice_id,),
        ).fetchall()
        cancels = [rid for rid, purpose in revisions if purpose == "cancel"]
        changes = [rid for rid, purpose in revisions if purpose == "change"]
        if cancels:
            current, status, others = cancels[-1], "void", "voided"
        else:
            current = changes[-1] if changes else revisions[-1][0]
            status, others = "active", "superseded"
        conn.execute(
            """update parcel_invoice_revisions set status =
                   case when id = %s then 'current' else %s end
               where invoice_id = %s""",
            (current, others, invoice_id),
        )
        conn.execute(
            """update parcel_invoices set status = %s, current_revision_id = %s,
                   updated_at = now() where id = %s""",
            (status, current, invoice_id),
        )
        conn.execute(
            """update review_queue set status = 'void'
               where status = 'open' and revision_id in (
                   select id from parcel_invoice_revisions
                   where invoice_id = %s and (id <> %s or %s = 'void'))""",
            (invoice_id, current, status),
        )
    return int(current)


def job_keys(conn: psycopg.Connection[Any], revision_ids: list[int]) -> dict[int, str]:
    """The shipment job of each revision, from the header it was normalized from."""
    rows = conn.execute(
        "select id, header from parcel_invoice_revisions where id = any(%s)", (revision_ids,)
    ).fetchall()
    out = {}
    for revision_id, header in rows:
        raw = header if isinstance(header, str) else json.dumps(header)
        out[int(revision_id)] = job_key_of(InvoiceHeader.model_validate_json(raw))
    return out


def revision_is_current(conn: psycopg.Connection[Any], revision_id: int) -> bool:
    row = conn.execute(
        """select r.status = 'current' and i.status = 'active'
           from parcel_invoice_revisions r join parcel_invoices i on i.id = r.invoice_id
           where r.id = %s""",
        (revision_id,),
    ).fetchone()
    return bool(row and row[0])


def queue_discrepancies(conn: psycopg.Connection[Any], revision_id: int) -> int:
    """Queue every discrepant finding of a revision in force; return how many it has queued.

    The invoice's row lock, the one ``apply_revisions`` takes, is held from the check to the
    insert: a revision superseded in between would otherwise leave open review items that
    nothing voids."""
    with conn.transaction():
        conn.execute(
            """select i.id from parcel_invoices i
               join parcel_invoice_revisions r on r.invoice_id = i.id
               where r.id = %s for update of i""",
            (revision_id,),
        )
        if revision_is_current(conn, revision_id):
            conn.execute(
                """insert into review_queue (group_id, revision_id, reason, billed, expected,
                       difference, currency)
                   select group_id, revision_id, array_to_string(reasons, '; '), billed,
                          expected, difference, currency
                   from audit_findings where revision_id = %s and discrepancy
                   on conflict (group_id) do nothing""",
                (revision_id,),
            )
        row = conn.execute(
            "select count(*) from review_queue where revision_id = %s and status = 'open'",
            (revision_id,),
        ).fetchone()
    return int(row[0]) if row else 0


# --------------------------------------------------------------------------------------------
# the summary of one file
# --------------------------------------------------------------------------------------------


def file_totals(conn: psycopg.Connection[Any], content_hash: str) -> dict[str, Any]:
    row = conn.execute(
        """select count(*), coalesce(sum(group_count), 0), coalesce(sum(charge_count), 0),
                  coalesce(sum(charges_total), 0)
           from parcel_invoice_revisions where file_hash = %s""",
        (content_hash,),
    ).fetchone()
    discrepancies = conn.execute(
        """select count(*) from review_queue q
           join parcel_invoice_revisions r on r.id = q.revision_id
           where r.file_hash = %s""",
        (content_hash,),
    ).fetchone()
    failures = conn.execute(
        "select count(*) from parcel_invoice_failures where file_hash = %s", (content_hash,)
    ).fetchone()
    meta = conn.execute(
        "select file_name, format, invoice_count, envelope_issues from parcel_files "
        "where content_hash = %s",
        (content_hash,),
    ).fetchone()
    assert row is not None and discrepancies is not None and failures is not None
    return {
        "invoices_ok": int(row[0]),
        "charge_groups": int(row[1]),
        "charges": int(row[2]),
        "charges_total": str(Decimal(row[3]).quantize(Decimal("0.01"))),
        "discrepancies": int(discrepancies[0]),
        "parse_failures": int(failures[0]),
        "file_name": meta[0] if meta else "",
        "format": meta[1] if meta else "",
        "invoices": int(meta[2]) if meta else 0,
        "envelope_issues": list(meta[3]) if meta else [],
    }


# --------------------------------------------------------------------------------------------
# the idempotency row (platform table): one ingestion per content hash, beyond retention
# --------------------------------------------------------------------------------------------


def claim_ingestion(
    conn: psycopg.Connection[Any], workflow_id: str, content_hash: str
) -> tuple[str, dict[str, Any]]:
    """Insert the row as 'running' unless it exists; return (outcome, detail) as stored."""
    conn.execute(
        """insert into idempotency (workflow_id, content_hash) values (%s, %s)
           on conflict (workflow_id) do nothing""",
        (workflow_id, content_hash),
    )
    row = conn.execute(
        "select outcome, detail from idempotency where workflow_id = %s", (workflow_id,)
    ).fetchone()
    assert row is not None
    return str(row[0]), dict(row[1])


def reopen_ingestion(conn: psycopg.Connection[Any], workflow_id: str) -> None:
    conn.execute(
        "update idempotency set outcome = 'running', updated_at = now() where workflow_id = %s",
        (workflow_id,),
    )


def finish_ingestion(
    conn: psycopg.Connection[Any],
    workflow_id: str,
    content_hash: str,
    outcome: str,
    detail: dict[str, Any],
) -> None:
    conn.execute(
        """insert into idempotency (workflow_id, content_hash, outcome, detail)
           values (%s, %s, %s, %s)
           on conflict (workflow_id) do update set outcome = excluded.outcome,
               detail = excluded.detail, updated_at = now()""",
        (workflow_id, content_hash, outcome, json.dumps(detail)),
    )

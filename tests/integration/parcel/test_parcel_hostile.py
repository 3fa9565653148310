"""Hostile files against the real app database and worker: what Postgres would refuse is refused
by the parser first and recorded, a worker that lacks a setting fails the ingestion at once, the
review queue cannot keep items of a superseded revision, and worker memory stays bounded."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from temporalio.client import Client, WorkflowFailureError

from app.core.blobstore import LocalBlobStore
from app.domains.parcel import tables
from app.formats import csv_layouts as L
from app.formats.files import parse_file
from app.formats.generator import Edi210Spec, write_edi210
from app.formats.invoice import Invoice, collect_invoices
from app.platform.client import HaulClient
from tests.integration.parcel.conftest import ParcelEnv, parcel_worker, run_file

ROOT = Path(__file__).resolve().parents[3]


def _seed() -> int:
    """A seed of this run only: its account makes the invoices new to the session database."""
    return uuid.uuid4().int % 10**8


def _hostile_edi(path: Path, seed: int) -> None:
    """Six invoices; four carry a value the database refuses or a number it cannot hold."""
    write_edi210(path, Edi210Spec(invoices=6, groups_per_invoice=1, charges_per_group=2,
                                  seed=seed, discount_every=0))
    head, *sets = path.read_text().split("ST*210*")
    edits = {
        1: ("C3*USD", "C3*DOLLARSUS"),
        2: ("N1*SH*HAUL SHIPPER", "N1*SH*HAUL\x00SHIPPER"),
    }
    for index, (old, new) in edits.items():
        assert old in sets[index]
        sets[index] = sets[index].replace(old, new, 1)
    sets[4] = re.sub(r"L0\*1\*\*\*\d+\*", "L0*1***1E+1000000*", sets[4], count=1)
    l1 = sets[3].index("L1*1*")
    amount_at = sets[3].index("*FR*", l1) + 4
    end = sets[3].index("*", amount_at)
    sets[3] = sets[3][:amount_at] + "100000000000000" + sets[3][end:]
    path.write_text("ST*210*".join([head, *sets]))


async def test_values_postgres_refuses_fail_their_invoice_and_are_recorded(
    client: Client, haul_client: HaulClient, task_queue: str, parcel_env: ParcelEnv,
    tmp_path: Path,
) -> None:
    path = tmp_path / "hostile.edi"
    _hostile_edi(path, seed=_seed())
    async with parcel_worker(client, task_queue, parcel_env):
        summary, _ = await asyncio.wait_for(
            run_file(haul_client, parcel_env, path, task_queue), timeout=300)
    assert summary.outcome == "completed" and summary.invoices == 6
    assert summary.invoices_ok == 3 and summary.failures == 3
    stored = {
        r[0]: r[1:] for r in parcel_env.rows(
            "select file_index, error_type, message, segment, position "
            "from parcel_invoice_failures where file_hash = %s", summary.content_hash)
    }
    assert sorted(stored) == [1, 2, 3]
    assert stored[1][0] == "ParcelInvoiceStructure" and "currency" in str(stored[1][1])
    assert stored[2][0] == "ParcelInvoiceStructure" and "control character" in str(stored[2][1])
    assert stored[3][0] == "ParcelInvalidAmount" and "out of range" in str(stored[3][1])
    assert all(row[2] and row[3] for row in stored.values())  # segment and position
    messages = {f.index: f.message for f in summary.failure_reasons}
    assert all("hostile.edi" in messages[i] for i in (1, 2, 3)), messages
    weight = parcel_env.rows(
        """select g.weight from parcel_charge_groups g
           join parcel_invoice_revisions r on r.id = g.revision_id
           where r.file_hash = %s and r.file_index = 4""", summary.content_hash)
    assert weight == [(None,)]  # a weight too large to store is dropped, the invoice stands


def _fedex_with_an_open_quote(path: Path, seed: int) -> int:
    """Five FedEx invoices of two rows; a quote in the second invoice is never closed.
    Returns the number of data rows."""
    names = [*L.FEDEX_COLUMNS.values(), L.FEDEX_CHARGE_DESCRIPTION, L.FEDEX_CHARGE_AMOUNT]
    lines = [",".join(names)]
    for invoice in range(5):
        for row in range(2):
            values = dict.fromkeys(L.FEDEX_COLUMNS, "")
            values.update(account_number=f"F{seed}", invoice_date="11/20/2026",
                          invoice_number=f"9{seed}{invoice}", original_amount_due="24.00",
                          tracking_id=f"7{seed}{invoice}{row}", transportation_charge="10.00",
                          net_charge="12.00", currency="USD")
            fuel = '"Fuel Surcharge' if (invoice, row) == (1, 0) else "Fuel Surcharge"
            lines.append(",".join([*values.values(), fuel, "2.00"]))
    path.write_text("\r\n".join(lines) + "\r\n")
    return len(lines) - 1


async def test_an_open_quote_fails_one_invoice_and_every_row_is_counted(
    client: Client, haul_client: HaulClient, task_queue: str, parcel_env: ParcelEnv,
    tmp_path: Path,
) -> None:
    path = tmp_path / "quote.csv"
    rows = _fedex_with_an_open_quote(path, _seed())
    async with parcel_worker(client, task_queue, parcel_env):
        summary, _ = await asyncio.wait_for(
            run_file(haul_client, parcel_env, path, task_queue, carrier="fedex"), timeout=300)
    assert summary.invoices == 5 and summary.invoices_ok == 4 and summary.failures == 1
    assert summary.rows_read == rows == summary.rows_in_invoices + summary.rows_refused
    assert summary.rows_refused == 2
    [failure] = summary.failure_reasons
    assert failure.index == 1 and "quote left open" in failure.message
    assert "row 4" in failure.message and "quote.csv" in failure.message


async def test_a_worker_without_the_files_blob_store_fails_the_ingestion_at_once(
    client: Client, haul_client: HaulClient, task_queue: str, parcel_env: ParcelEnv,
    tmp_path: Path,
) -> None:
    path = tmp_path / "elsewhere.edi"
    write_edi210(path, Edi210Spec(invoices=1, seed=_seed()))
    elsewhere = LocalBlobStore(tmp_path / "other-blobs")
    started = time.monotonic()
    async with parcel_worker(client, task_queue, parcel_env):
        with pytest.raises(WorkflowFailureError) as err:
            await asyncio.wait_for(run_file(haul_client, parcel_env, path, task_queue,
                                            submit_blobs=elsewhere), timeout=120)
    cause = err.value.cause
    assert getattr(cause, "type", None) == "HaulConfigurationError", cause
    assert "HAUL_BLOB_DIR" in str(getattr(cause, "message", "")) and \
        "elsewhere.edi" in str(getattr(cause, "message", ""))
    print(f"rejected after {time.monotonic() - started:.1f} s")


def _revision(conn: psycopg.Connection[Any], text: str, file_hash: str) -> tuple[int, int]:
    tables.upsert_file(conn, content_hash=file_hash, workflow_id=file_hash, file_name="",
                       carrier="", format="edi_x12", invoice_count=1, charge_count=1,
                       envelope_issues=[])
    [invoice] = collect_invoices(parse_file(text.encode()))
    assert isinstance(invoice, Invoice)
    summary = invoice.summary
    return tables.write_revision(conn, file_hash, invoice.header, invoice.charge_groups,
                                 lambda: summary)


def test_queueing_cannot_race_a_newer_revision(
    parcel_env: ParcelEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check that a revision is current and its insert are one step under the invoice's
    row lock: forced to interleave, the superseding revision waits and voids the items."""
    path = tmp_path / "race.edi"
    write_edi210(path, Edi210Spec(invoices=1, groups_per_invoice=2, charges_per_group=1,
                                  seed=_seed()))
    original = path.read_text()
    change = original.replace("*20261120~C3", "*20261120~B2A*04~C3", 1)
    se = change.index("SE*")
    end = change.index("*", se + 3)
    change = change[:se + 3] + str(int(change[se + 3:end]) + 1) + change[end:]
    run = uuid.uuid4().hex
    with psycopg.connect(parcel_env.dsn, autocommit=True) as conn:
        invoice_id, first = _revision(conn, original, f"race-{run}-1")
        assert tables.apply_revisions(conn, invoice_id) == first
        conn.execute(
            """insert into audit_findings (group_id, revision_id, billed, expected, difference,
                   currency, discrepancy, reasons)
               select id, revision_id, total, 0, total, 'USD', true, array['over contract']
               from parcel_charge_groups where revision_id = %s""", (first,))
        _, second = _revision(conn, change, f"race-{run}-2")

    real_check = tables.revision_is_current
    supersede_error: list[BaseException] = []

    def supersede() -> None:
        try:
            with psycopg.connect(parcel_env.dsn, autocommit=True) as other:
                pid.append(other.info.backend_pid)
                tables.apply_revisions(other, invoice_id)
        except BaseException as exc:  # reported by the test thread
            supersede_error.append(exc)

    pid: list[int] = []
    thread = threading.Thread(target=supersede)

    def checked_then_superseded(conn: psycopg.Connection[Any], revision_id: int) -> bool:
        current = real_check(conn, revision_id)
        thread.start()  # the newer revision arrives between the check and the insert
        deadline = time.monotonic() + 120
        with psycopg.connect(parcel_env.dsn, autocommit=True) as watch:
            while time.monotonic() < deadline and thread.is_alive():
                waiting = pid and watch.execute(
                    "select wait_event_type = 'Lock' from pg_stat_activity where pid = %s",
                    (pid[0],)).fetchone()
                if waiting and waiting[0]:
                    break  # it waits for the lock this transaction holds
                time.sleep(0.05)
        return current

    monkeypatch.setattr(tables, "revision_is_current", checked_then_superseded)
    with psycopg.connect(parcel_env.dsn, autocommit=True) as conn:
        queued = tables.queue_discrepancies(conn, first)
    thread.join(timeout=60)
    assert not thread.is_alive() and not supersede_error, supersede_error
    assert queued == 2
    statuses = parcel_env.rows(
        "select revision_id, status from review_queue where revision_id in (%s, %s)",
        first, second)
    assert statuses and all(status == "void" for _, status in statuses), statuses
    assert parcel_env.one("select current_revision_id from parcel_invoices where id = %s",
                          invoice_id) == second


def test_worker_peak_rss_stays_bounded_on_the_full_activities(parcel_env: ParcelEnv) -> None:
    """index_file and normalize_invoice themselves, on Postgres, on the largest inputs, at the
    default caps: a 400,000-charge group is written whole, one past the cap is refused."""
    done = subprocess.run(
        [sys.executable, "-m", "loadtest.bench_parcel_memory", "--case", "one-group-400k",
         "--case", "group-over-cap", "--dsn", parcel_env.dsn],
        capture_output=True, text=True, cwd=ROOT, timeout=1800, check=False,
        env={k: v for k, v in {**os.environ, "PYTHONPATH": str(ROOT)}.items()
             if k != "HAUL_PARCEL_MAX_CHARGES_PER_GROUP"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    reports = [json.loads(line) for line in done.stdout.strip().splitlines()]
    print("\n".join(json.dumps(r) for r in reports))
    for report in reports:
        assert report["children_peak_rss_mib"] < 512 and report["self_peak_rss_mib"] < 512
    accepted, refused = reports
    assert accepted["charges"] == 400_000 and not accepted["failures"]
    with psycopg.connect(parcel_env.dsn) as conn:
        row = conn.execute(
            """select count(*) from parcel_charges c
               join parcel_charge_groups g on g.id = c.group_id
               join parcel_invoice_revisions r on r.id = g.revision_id
               join parcel_files f on f.content_hash = r.file_hash
               where f.workflow_id = 'bench-one-group-400k'""").fetchone()
    assert row is not None and row[0] == 400_000
    [failure] = refused["failures"]
    assert "more than 1,000,000 L1 charges" in failure
    assert "HAUL_PARCEL_MAX_CHARGES_PER_GROUP" in failure

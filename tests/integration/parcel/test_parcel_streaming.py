"""A charge group above the old 20,000 cap, on the dev stack's Postgres: normalize writes it
completely as its chunks stream in, heartbeating inside the group, in one transaction (an
attempt that fails part-way leaves no row, and the retry writes every row once); and the whole
pipeline on a real worker takes it to the end."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from pathlib import Path
from typing import Any, cast

import pytest
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from app.domains.parcel.activities import ParcelActivities
from app.domains.parcel.models import (
    IndexInput,
    InvoiceInput,
    PipelineSettings,
    file_blob_key,
    invoice_blob_key,
    legacy_invoice_blob_key,
)
from app.formats.generator import Edi210Spec, EdiQuirks, GenerationReport, write_edi210
from app.platform import heartbeat
from app.platform.client import HaulClient
from app.platform.worker import WorkerContext
from tests.integration.parcel.conftest import ParcelEnv, parcel_worker, run_file

CHARGES = 30_000  # in one LX loop: the old cap refused anything past 20,000


def _file(tmp_path: Path) -> tuple[Path, GenerationReport]:
    """One invoice of one 30,000-charge group, on an account of this run only."""
    path = tmp_path / "long-group.edi"
    seed = uuid.uuid4().int % 10**8
    report = write_edi210(path, Edi210Spec(
        invoices=1, groups_per_invoice=1, charges_per_group=CHARGES, seed=seed,
        discount_every=0, negative_charge=frozenset({0}), quirks=EdiQuirks(newline="\n"),
    ))
    return path, report


def _charge_rows(env: ParcelEnv, content_hash: str) -> list[tuple[Any, ...]]:
    """(group sequence, charges, sum of amounts, max ordinal, group total) per group."""
    return env.rows(
        """select g.sequence, count(c.ordinal), sum(c.amount), max(c.ordinal), g.total
           from parcel_invoice_revisions r
           join parcel_charge_groups g on g.revision_id = r.id
           left join parcel_charges c on c.group_id = g.id
           where r.file_hash = %s group by g.sequence, g.total order by g.sequence""",
        content_hash)


def test_normalize_streams_a_long_group_with_heartbeats_in_one_transaction(
    parcel_env: ParcelEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, report = _file(tmp_path)
    content_hash = hashlib.sha256(path.read_bytes()).hexdigest()
    parcel_env.blobs.put_file(file_blob_key(content_hash), path)
    acts = ParcelActivities(WorkerContext(parcel_env.settings, cast(HaulClient, None)))
    env = ActivityEnvironment()
    beats: list[tuple[Any, ...]] = []
    env.on_heartbeat = lambda *details: beats.append(details)
    index = env.run(acts.index_file, IndexInput(content_hash=content_hash, workflow_id="w",
                                                file_name=path.name))
    assert index.charge_count == CHARGES and index.parse_failures == 0

    # an attempt that dies after every chunk went in: the blob lost its summary line
    key = invoice_blob_key(content_hash, 0)
    whole = parcel_env.blobs.get(key)
    parcel_env.blobs.put(key, b"".join(
        line for line in whole.splitlines(keepends=True) if not line.startswith(b'{"s":')))
    with pytest.raises(RuntimeError, match="no summary line"):
        env.run(acts.normalize_invoice, InvoiceInput(content_hash=content_hash, index=0))
    assert _charge_rows(parcel_env, content_hash) == []
    assert parcel_env.one("select count(*) from parcel_invoice_revisions where file_hash = %s",
                          content_hash) == 0

    # the retry: every heartbeat call reaches the server, so the details show the progress
    parcel_env.blobs.put(key, whole)
    monkeypatch.setattr(heartbeat, "HEARTBEAT_AFTER", 0.0)
    beats.clear()
    result = env.run(acts.normalize_invoice, InvoiceInput(content_hash=content_hash, index=0))
    assert result.charge_count == CHARGES and result.group_count == 1
    [(sequence, count, amounts, last, total)] = _charge_rows(parcel_env, content_hash)
    assert (sequence, count, last) == (1, CHARGES, CHARGES)
    assert amounts == total == report.total
    # heartbeats came from inside the one group, before it ended, with the charges written
    assert beats and all(len(details) == 2 for details in beats), beats
    inside = [written for group, written in beats if group == 1 and written < CHARGES]
    assert len(inside) >= CHARGES // 1_000 - 1 and inside == sorted(set(inside)), beats

    # once more, as a retried activity would: the revision is found and nothing is added
    env.run(acts.normalize_invoice, InvoiceInput(content_hash=content_hash, index=0))
    assert _charge_rows(parcel_env, content_hash)[0][1] == CHARGES


async def test_the_pipeline_takes_a_long_group_to_the_end(
    client: Client, haul_client: HaulClient, task_queue: str, parcel_env: ParcelEnv,
    tmp_path: Path,
) -> None:
    path, report = _file(tmp_path)
    async with parcel_worker(client, task_queue, parcel_env):
        summary, _ = await asyncio.wait_for(run_file(
            haul_client, parcel_env, path, task_queue,
            settings=PipelineSettings(max_concurrency=4, audit_batch_size=500)), timeout=600)
    assert summary.outcome == "completed" and summary.failures == 0
    assert summary.charges == CHARGES and summary.charges_total == str(report.total)
    [(_, count, amounts, _, _)] = _charge_rows(parcel_env, summary.content_hash)
    assert count == CHARGES and amounts == report.total
    # the negative charge the generator planted reached the review queue
    assert summary.discrepancies == 1


def test_a_blob_indexed_before_chunks_is_still_normalized(
    parcel_env: ParcelEnv, tmp_path: Path
) -> None:
    """A file indexed by a worker from before chunked groups: its invoice blob has the old
    name (and whole groups only), and a new worker reads it there."""
    path = tmp_path / "small.edi"
    report = write_edi210(path, Edi210Spec(invoices=1, groups_per_invoice=3,
                                           seed=uuid.uuid4().int % 10**8))
    content_hash = hashlib.sha256(path.read_bytes()).hexdigest()
    parcel_env.blobs.put_file(file_blob_key(content_hash), path)
    acts = ParcelActivities(WorkerContext(parcel_env.settings, cast(HaulClient, None)))
    env = ActivityEnvironment()
    env.run(acts.index_file, IndexInput(content_hash=content_hash, workflow_id="w"))
    body = parcel_env.blobs.get(invoice_blob_key(content_hash, 0))
    assert b'{"c":' not in body
    parcel_env.blobs.put(legacy_invoice_blob_key(content_hash, 0), body)
    (parcel_env.blobs.root / invoice_blob_key(content_hash, 0)).unlink()
    result = env.run(acts.normalize_invoice, InvoiceInput(content_hash=content_hash, index=0))
    [invoice] = report.invoices
    assert (result.group_count, result.charge_count) == (invoice.groups, invoice.charges)
    assert sum(row[1] for row in _charge_rows(parcel_env, content_hash)) == invoice.charges

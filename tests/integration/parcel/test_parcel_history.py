"""History checks on big files, with a lowered continue-as-new threshold.

A 10,000-invoice file (packed runs of 100 small invoices) and a file whose invoices hold
200,000 charges each (a child each). Every history is walked: no event (so no payload) reaches
16 KiB, the splitter continued as new, every child was started and completed exactly once and
none was terminated, the children cover every invoice of the file exactly once, and Postgres
holds exactly the rows the file has.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest
from temporalio.client import Client

from app.domains.parcel.models import PipelineSettings
from app.formats.generator import Edi210Spec, write_edi210
from app.platform.client import HaulClient
from tests.integration.parcel.conftest import ParcelEnv, parcel_worker, run_file
from tests.integration.parcel.history_checks import walk

KIB16 = 16 * 1024


def covered(child_ids: Iterable[str]) -> list[int]:
    """The file indices the children hold: `first+count` for a run, one index for an invoice."""
    out: list[int] = []
    for wf_id in child_ids:
        key = wf_id.rsplit(":", 1)[1]
        first, _, count = key.partition("+")
        out += range(int(first), int(first) + int(count or 1))
    return out


async def check_big_file(
    client: Client, haul: HaulClient, env: ParcelEnv, task_queue: str, path: Path,
    spec: Edi210Spec, settings: PipelineSettings,
) -> None:
    report = write_edi210(path, spec)
    async with parcel_worker(client, task_queue, env, activities=8):
        summary, ran = await run_file(haul, env, path, task_queue, settings=settings)
    assert ran and summary.outcome == "completed" and summary.failures == 0
    history = await walk(client, summary.workflow_id)

    assert history.largest_event < KIB16, (history.largest_event, history.largest_event_type)
    assert history.splitter_runs > 1
    assert sorted(covered(history.child_started)) == list(range(spec.invoices))
    assert set(history.child_started.values()) == {1}
    assert history.child_completed == history.child_started
    assert not history.child_failed and not history.child_terminated
    assert set(history.child_runs.values()) == {1}

    h = summary.content_hash
    assert env.one("select count(*) from parcel_invoice_revisions where file_hash = %s", h) \
        == spec.invoices
    assert env.one(
        """select count(*) from parcel_charge_groups g join parcel_invoice_revisions r
           on r.id = g.revision_id where r.file_hash = %s""", h) == report.groups
    assert env.one(
        """select count(*) from parcel_charges c join parcel_charge_groups g on g.id = c.group_id
           join parcel_invoice_revisions r on r.id = g.revision_id where r.file_hash = %s""",
        h) == report.charges
    assert env.one(
        """select sum(c.amount) from parcel_charges c join parcel_charge_groups g
           on g.id = c.group_id join parcel_invoice_revisions r on r.id = g.revision_id
           where r.file_hash = %s""", h) == report.total
    assert env.one(
        """select count(*) from audit_findings f join parcel_invoice_revisions r
           on r.id = f.revision_id where r.file_hash = %s""", h) == report.groups


# 10,000 invoices in 100 packed runs, 30 children per splitter run.
@pytest.mark.timeout(2400)
async def test_10000_invoice_file(
    client: Client, haul_client: HaulClient, task_queue: str, parcel_env: ParcelEnv,
    tmp_path: Path,
) -> None:
    spec = Edi210Spec(invoices=10_000, groups_per_invoice=1, charges_per_group=1,
                      functional_groups=4, seed=1042, discount_every=0)
    settings = PipelineSettings(max_concurrency=200, audit_batch_size=10, page_size=200,
                                children_per_run=30, invoices_per_run=100,
                                update_job_status=False)
    await check_big_file(client, haul_client, parcel_env, task_queue, tmp_path / "10k.edi",
                         spec, settings)


async def test_200000_charge_invoices(
    client: Client, haul_client: HaulClient, task_queue: str, parcel_env: ParcelEnv,
    tmp_path: Path,
) -> None:
    spec = Edi210Spec(invoices=2, groups_per_invoice=1_000, charges_per_group=200, seed=1043)
    settings = PipelineSettings(max_concurrency=2, audit_batch_size=250, children_per_run=1)
    await check_big_file(client, haul_client, parcel_env, task_queue, tmp_path / "200k.edi",
                         spec, settings)

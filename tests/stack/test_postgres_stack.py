"""temporal-server on Postgres: the sample workload, where its rows land, restart, shard guard."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import psycopg
import pytest
from temporalio.api.workflowservice.v1 import GetClusterInfoRequest

from app.platform.client import HaulClient
from app.stack import check, cluster
from app.stack.registry import ClusterRecord, Registry
from app.stack.spec import SpecError
from tests.stack.conftest import PG
from tests.stack.helpers import kill_server_mid_run, run_id_of, sample_run


async def test_sample_workflows_persist_in_the_temporal_database(
    pg_cluster: ClusterRecord, pg_client: HaulClient, run_id: str
) -> None:
    ids = await sample_run(pg_client, f"pg-{run_id}")
    greeting = ids["greeting"]
    run = uuid.UUID(await run_id_of(pg_client, greeting))
    with psycopg.connect(pg_cluster.dsn("temporal")) as conn:
        execs = conn.execute(
            "select run_id from executions where workflow_id = %s", (greeting,)
        ).fetchall()
        nodes = conn.execute(
            "select count(*) from history_node where tree_id = %s", (run.bytes,)
        ).fetchone()
    assert [bytes(r[0]) for r in execs] == [run.bytes]
    assert nodes is not None and nodes[0] > 0
    with psycopg.connect(pg_cluster.dsn("temporal_visibility")) as conn:
        vis = conn.execute(
            "select status from executions_visibility where workflow_id = %s", (greeting,)
        ).fetchall()
    assert vis == [(2,)]  # WORKFLOW_EXECUTION_STATUS_COMPLETED


async def test_server_killed_mid_run_restarts_and_workflows_complete(
    pg_cluster: ClusterRecord, pg_client: HaulClient, run_id: str
) -> None:
    await kill_server_mid_run(pg_cluster, pg_client, f"pg-kill-{run_id}")


async def test_shard_guard_refuses_a_different_shard_count(
    pg_cluster: ClusterRecord, pg_client: HaulClient
) -> None:
    info = await pg_client.client.workflow_service.get_cluster_info(GetClusterInfoRequest())
    live = info.history_shard_count
    with pytest.raises(SpecError) as err:
        await asyncio.to_thread(cluster.up, PG, "postgres", shards=live * 2)
    msg = str(err.value)
    assert f"numHistoryShards {live * 2} was requested" in msg
    assert f"live cluster has {live}" in msg and "GetClusterInfo" in msg
    # The same count is accepted, and the record keeps the live value.
    await asyncio.to_thread(cluster.up, PG, "postgres", shards=live)
    rec = Registry().get(PG)
    assert rec is not None and rec.num_history_shards == live


async def test_check_passes_on_the_live_postgres_cluster(pg_cluster: ClusterRecord) -> None:
    results = await asyncio.to_thread(check.run_checks, pg_cluster)
    names = {r.name for r in results}
    assert {"schema temporal", "schema temporal_visibility", "postgres TLS", "namespaces"} <= names
    failed = [r for r in results if not r.ok]
    assert not failed, failed


def test_dynamic_config_is_the_file_the_server_watches(pg_cluster: ClusterRecord) -> None:
    import subprocess

    import yaml

    from app.stack import builds
    from app.stack.spec_render import render_dynamic_config

    spec = cluster.cluster_spec(pg_cluster)
    watched = str(pg_cluster.config_dir / "dynamicconfig.yaml")
    config = (pg_cluster.config_dir / "temporal.yaml").read_text()
    assert f"dynamicConfigClient:\n  filepath: {watched}\n" in config
    assert yaml.safe_load(Path(watched).read_text()) == render_dynamic_config(spec)
    # The pinned server itself accepts every key and type in it.
    tools = builds.temporal_binaries()
    proc = subprocess.run(
        [str(tools.server), "validate-dynamic-config", watched], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

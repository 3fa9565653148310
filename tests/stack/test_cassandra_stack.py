"""temporal-server on Cassandra (the ScyllaDB stand-in) with visibility on Postgres."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest

from app.core.migrate import MigrationError, load, migrations_dir
from app.platform.client import HaulClient
from app.stack import check, cluster, schema, scylla
from app.stack.registry import ClusterRecord
from app.stack.spec import CassandraStore, ClusterSpec
from app.stack.spec_render import render_spec_file
from tests.stack.conftest import CS
from tests.stack.helpers import kill_server_mid_run, run_id_of, sample_run


def _spec(rec: ClusterRecord, keyspace: str | None = None) -> ClusterSpec:
    """The local cluster's ClusterSpec, on another keyspace when one is given."""
    spec = cluster.cluster_spec(rec)
    store = scylla.cql_store(spec)
    if keyspace:
        store = store.model_copy(update={"keyspace": keyspace})
    return spec.model_copy(update={"persistence": store})


def _store(rec: ClusterRecord) -> CassandraStore:
    return scylla.cql_store(_spec(rec))


async def test_sample_workflows_persist_in_cassandra_and_visibility_in_postgres(
    cs_cluster: ClusterRecord, cs_client: HaulClient, run_id: str
) -> None:
    ids = await sample_run(cs_client, f"cs-{run_id}")
    greeting = ids["greeting"]
    run = uuid.UUID(await run_id_of(cs_client, greeting))
    with scylla.session(_store(cs_cluster)) as sess:
        execs = sess.execute(
            "SELECT run_id FROM temporal.executions WHERE workflow_id = %s ALLOW FILTERING",
            (greeting,),
        ).all()
        nodes = sess.execute(
            "SELECT node_id FROM temporal.history_node WHERE tree_id = %s", (run,)
        ).all()
        ks = sess.execute(
            "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = 'temporal'"
        ).one()
        tables = {
            r.table_name
            for r in sess.execute(
                "SELECT table_name FROM system_schema.tables WHERE keyspace_name = 'temporal'"
            )
        }
    assert run in {r.run_id for r in execs}
    assert len(nodes) > 0
    assert ks.replication["class"].endswith("NetworkTopologyStrategy")
    assert ks.replication["datacenter1"] == "1"
    assert "executions_visibility" not in tables
    with psycopg.connect(cs_cluster.dsn("temporal_visibility")) as conn:
        vis = conn.execute(
            "select status from executions_visibility where workflow_id = %s", (greeting,)
        ).fetchall()
    assert vis == [(2,)]  # completed, recorded in Postgres visibility
    with psycopg.connect(cs_cluster.dsn("postgres")) as conn:
        dbs = {r[0] for r in conn.execute("select datname from pg_database").fetchall()}
    assert "temporal" not in dbs  # the default store is Cassandra, not Postgres


async def test_server_killed_mid_run_restarts_and_workflows_complete(
    cs_cluster: ClusterRecord, cs_client: HaulClient, run_id: str
) -> None:
    await kill_server_mid_run(cs_cluster, cs_client, f"cs-kill-{run_id}")


async def test_postgres_and_cassandra_clusters_run_side_by_side(
    pg_cluster: ClusterRecord, cs_cluster: ClusterRecord
) -> None:
    assert pg_cluster.port_base != cs_cluster.port_base
    for rec in (pg_cluster, cs_cluster):
        client = await cluster.connect_raw(rec)
        info = await client.workflow_service.get_system_info(GetSystemInfoRequest())
        assert info.server_version == "1.32.0"


async def test_check_passes_on_the_live_cassandra_cluster(cs_cluster: ClusterRecord) -> None:
    results = await asyncio.to_thread(check.run_checks, cs_cluster)
    by_name = {r.name: r for r in results}
    for name in (
        "keyspace replication",
        "datacenter",
        "schema temporal",
        "lightweight transaction",
        "schema temporal_visibility",
        "postgres TLS",
        "namespaces",
    ):
        assert by_name[name].ok, by_name[name]
    assert "NetworkTopologyStrategy" in by_name["keyspace replication"].detail


def _make_keyspace(rec: ClusterRecord, name: str, replication: str) -> None:
    with scylla.session(_store(rec)) as sess:
        sess.execute(f"DROP KEYSPACE IF EXISTS {name}")
        sess.execute(f"CREATE KEYSPACE {name} WITH replication = {replication}")


async def test_check_fails_on_a_keyspace_with_the_wrong_replication(
    cs_cluster: ClusterRecord,
) -> None:
    _make_keyspace(cs_cluster, "st_simple", "{'class': 'SimpleStrategy', 'replication_factor': 1}")
    _make_keyspace(cs_cluster, "st_rf3", "{'class': 'NetworkTopologyStrategy', 'datacenter1': 3}")
    simple = await asyncio.to_thread(check.run_checks, cs_cluster, keyspace="st_simple")
    other = await asyncio.to_thread(check.run_checks, cs_cluster, keyspace="st_rf3")
    rep = {r.name: r for r in simple}["keyspace replication"]
    assert not rep.ok and "SimpleStrategy" in rep.detail
    rep = {r.name: r for r in other}["keyspace replication"]
    assert not rep.ok and "{'datacenter1': 3}" in rep.detail and "{'datacenter1': 1}" in rep.detail
    schema = {r.name: r for r in simple}["schema st_simple"]
    assert not schema.ok and "1.13" in schema.detail
    # The command reports the failure and exits non-zero.
    proc = subprocess.run(
        [sys.executable, "-m", "app", "stack", "check", CS, "--keyspace", "st_simple"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL" in proc.stdout and "SimpleStrategy" in proc.stdout


async def test_scylla_bootstrap_is_idempotent_and_refuses_drift(
    cs_cluster: ClusterRecord, tmp_path: Path
) -> None:
    # On the live keyspace everything is applied already.
    assert scylla.bootstrap(_spec(cs_cluster)) == []
    # A fresh keyspace gets every file once, as NetworkTopologyStrategy.
    fresh = f"st_boot_{uuid.uuid4().hex[:8]}"
    applied = scylla.bootstrap(_spec(cs_cluster, fresh))
    assert applied == [m.name for m in load(tree="scylla")]
    with scylla.session(_store(cs_cluster)) as sess:
        assert not scylla.is_scylla(sess)
        rep = scylla.keyspace_replication(sess, fresh)
    assert rep == {"class": scylla.NTS, "datacenter1": "1"}
    # A file changed after it was applied is refused.
    changed = tmp_path / "scylla"
    shutil.copytree(migrations_dir("scylla"), changed)
    first = sorted(changed.glob("*.cql"))[-1]
    first.write_text(first.read_text() + "\n-- edited\n")
    with pytest.raises(MigrationError, match="was changed after it was applied"):
        scylla.bootstrap(_spec(cs_cluster, fresh), changed)
    # A keyspace that exists with other replication is refused, naming what differs.
    _make_keyspace(cs_cluster, "st_simple", "{'class': 'SimpleStrategy', 'replication_factor': 1}")
    with pytest.raises(scylla.BootstrapError, match="SimpleStrategy"):
        scylla.bootstrap(_spec(cs_cluster, "st_simple"))


def test_a_cassandra_that_fails_to_start_shows_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.core.procs import StartupError
    from app.stack import cassandra

    rec = ClusterRecord(
        name="st-broken", backend="cassandra", port_base=27900, data_dir=str(tmp_path)
    )
    store = CassandraStore(port=rec.port("cassandra_cql"), replication={"datacenter1": 1})
    render = cassandra.render_yaml

    def broken(rec: ClusterRecord, store: CassandraStore) -> dict:
        return {**render(rec, store), "no_such_setting_in_cassandra": True}

    monkeypatch.setattr(cassandra, "render_yaml", broken)
    with pytest.raises(StartupError) as err:
        cassandra.start(rec, store, timeout=120)
    msg = str(err.value)
    assert "exited during startup" in msg and "no_such_setting_in_cassandra" in msg


async def test_check_names_both_versions_on_an_old_keyspace_schema(
    cs_cluster: ClusterRecord,
) -> None:
    from app.stack import builds

    old_ks = f"st_old_{uuid.uuid4().hex[:8]}"
    scylla.bootstrap(_spec(cs_cluster, old_ks))
    tools = builds.temporal_binaries()
    wanted = tools.schema_versions["cassandra"]
    major, minor = wanted.split(".")
    older = f"{major}.{int(minor) - 1}"
    base = [
        str(tools.cassandra_tool),
        "--ep",
        "127.0.0.1",
        "-p",
        str(cs_cluster.port("cassandra_cql")),
        "-k",
        old_ks,
        *schema.cql_tls_flags(_store(cs_cluster)),
    ]
    for args in (
        ["setup-schema", "-v", "0.0"],
        ["update-schema", "-s", "cassandra/temporal", "-v", older],
    ):
        proc = subprocess.run([*base, *args], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    results = await asyncio.to_thread(check.run_checks, cs_cluster, keyspace=old_ks)
    res = {r.name: r for r in results}[f"schema {old_ks}"]
    assert not res.ok
    assert res.detail == f"schema_version is {older}, the pinned server needs {wanted}"
    assert {r.name: r for r in results}["keyspace replication"].ok


def test_scylla_bootstrap_command_creates_the_keyspace(
    cs_cluster: ClusterRecord, tmp_path: Path
) -> None:
    # The command reads everything from a rendered ClusterSpec file, as infra's Job does.
    keyspace = f"st_cli_{uuid.uuid4().hex[:8]}"
    spec_file = tmp_path / "cluster.yaml"
    spec_file.write_text(render_spec_file(_spec(cs_cluster, keyspace)))
    argv = [sys.executable, "-m", "app", "db", "scylla-bootstrap", "--spec", str(spec_file)]
    first = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stdout + first.stderr
    wanted = len(load(tree="scylla"))
    assert f"keyspace {keyspace!r}: applied {wanted} CQL file(s)" in first.stdout
    again = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "applied 0 CQL file(s)" in again.stdout
    with scylla.session(_store(cs_cluster)) as sess:
        rep = scylla.keyspace_replication(sess, keyspace)
    assert rep == {"class": scylla.NTS, "datacenter1": "1"}

"""`haul stack check NAME`: validate a live cluster against its ClusterSpec, check by check.

- keyspace replication and datacenter (CQL store): NetworkTopologyStrategy with the configured
  replication factor per datacenter, and the nodes in the configured datacenter;
- schema versions (`schema_version`, `schema_update_history`) against what the pinned server
  needs, for the keyspace and each Postgres database; a mismatch names both versions;
- a working lightweight transaction (CQL store);
- the Postgres TLS mode;
- the registered namespaces and their retention.

Every check reports; none stops the others.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from app.stack import builds, cluster, scylla
from app.stack.registry import ClusterRecord
from app.stack.spec import CassandraStore, ClusterSpec, PostgresStore


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


def _guard(name: str, fn: Callable[[], CheckResult | list[CheckResult]]) -> list[CheckResult]:
    try:
        out = fn()
    except Exception as err:  # a check that cannot run is a failed check, not a crash
        return [CheckResult(name, False, f"could not check: {type(err).__name__}: {err}")]
    return out if isinstance(out, list) else [out]


def run_checks(rec: ClusterRecord, *, keyspace: str | None = None) -> list[CheckResult]:
    """Every check for one local cluster; keyspace overrides the spec's CQL keyspace."""
    spec = cluster.cluster_spec(rec)
    results: list[CheckResult] = []
    if rec.backend == "dev":
        results += _guard("namespaces", lambda: _namespaces(rec, spec))
        return results
    wanted = builds.temporal_binaries(spec.server_version).schema_versions
    store = spec.persistence
    if isinstance(store, CassandraStore):
        if keyspace:
            store = store.model_copy(update={"keyspace": keyspace})
        cql = store
        replication = cql.replication_for(spec.environment)
        results += _guard("keyspace replication", lambda: _cql_checks(cql, replication, wanted))
    else:
        pg = store
        results += _guard(
            f"schema {pg.database}",
            lambda: _pg_schema(rec, pg, pg.database, wanted["postgresql"]),
        )
    vis = spec.visibility
    results += _guard(
        f"schema {vis.database}",
        lambda: _pg_schema(rec, vis, vis.database, wanted["postgresql_visibility"]),
    )
    results += _guard("postgres TLS", lambda: _pg_tls(rec, vis))
    results += _guard("namespaces", lambda: _namespaces(rec, spec))
    return results


# ---- CQL ------------------------------------------------------------------------------------


def _cql_checks(
    store: CassandraStore, replication: dict[str, int], wanted: dict[str, str]
) -> list[CheckResult]:
    ks = store.keyspace
    with scylla.session(store) as sess:
        return [
            *_guard("keyspace replication", lambda: _replication(sess, ks, replication)),
            *_guard("datacenter", lambda: _datacenter(sess, store.datacenter)),
            *_guard(f"schema {ks}", lambda: _cql_schema(sess, ks, wanted["cassandra"])),
            *_guard("lightweight transaction", lambda: _lwt(sess, ks)),
        ]


def _replication(sess: Any, ks: str, replication: dict[str, int]) -> CheckResult:
    actual = scylla.keyspace_replication(sess, ks)
    if actual is None:
        return CheckResult("keyspace replication", False, f"keyspace {ks!r} is missing")
    why = scylla.replication_mismatch(actual, replication)
    shown = {k: v for k, v in actual.items() if k != "class"}
    cls = actual.get("class", "").rsplit(".", 1)[-1]
    detail = f"{ks}: {cls} {shown}" if why is None else f"{ks}: {why}"
    return CheckResult("keyspace replication", why is None, detail)


def _datacenter(sess: Any, datacenter: str) -> CheckResult:
    dcs = {r.data_center for r in sess.execute("SELECT data_center FROM system.local")}
    dcs |= {r.data_center for r in sess.execute("SELECT data_center FROM system.peers")}
    return CheckResult(
        "datacenter", datacenter in dcs, f"configured {datacenter!r}; nodes report {sorted(dcs)}"
    )


def _cql_schema(sess: Any, ks: str, wanted: str) -> CheckResult:
    name = f"schema {ks}"
    tables = {
        r.table_name
        for r in sess.execute(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (ks,)
        )
    }
    if "schema_version" not in tables:
        return CheckResult(name, False, f"no schema_version table in {ks!r}; server needs {wanted}")
    row = sess.execute(
        f"SELECT curr_version FROM {ks}.schema_version WHERE keyspace_name = %s", (ks,)
    ).one()
    current = row.curr_version if row else None
    history = [
        r.new_version for r in sess.execute(f"SELECT new_version FROM {ks}.schema_update_history")
    ]
    return _versions(name, current, history, wanted)


def _lwt(sess: Any, ks: str) -> CheckResult:
    tables = sess.execute(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s "
        "AND table_name = 'haul_lwt_probe'",
        (ks,),
    ).one()
    if tables is None:
        return CheckResult(
            "lightweight transaction",
            False,
            f"no {ks}.haul_lwt_probe table; run `haul db scylla-bootstrap` for this keyspace",
        )
    probe = f"check-{uuid.uuid4()}"
    now = datetime.now(UTC)
    first = sess.execute(
        f"INSERT INTO {ks}.haul_lwt_probe (id, owner, checked_at) VALUES (%s, %s, %s) "
        "IF NOT EXISTS",
        (probe, "a", now),
    ).one()
    second = sess.execute(
        f"INSERT INTO {ks}.haul_lwt_probe (id, owner, checked_at) VALUES (%s, %s, %s) "
        "IF NOT EXISTS",
        (probe, "b", now),
    ).one()
    swap = sess.execute(
        f"UPDATE {ks}.haul_lwt_probe SET owner = %s WHERE id = %s IF owner = %s", ("c", probe, "a")
    ).one()
    sess.execute(f"DELETE FROM {ks}.haul_lwt_probe WHERE id = %s IF EXISTS", (probe,))
    ok = bool(first.applied) and not bool(second.applied) and bool(swap.applied)
    detail = (
        "INSERT IF NOT EXISTS applied once, refused twice; UPDATE IF applied"
        if ok
        else f"unexpected LWT results: first={first.applied} second={second.applied} "
        f"swap={swap.applied}"
    )
    return CheckResult("lightweight transaction", ok, detail)


# ---- Postgres -------------------------------------------------------------------------------


def _connect(rec: ClusterRecord, store: PostgresStore, database: str) -> psycopg.Connection:
    params: dict[str, Any] = {
        "host": store.host,
        "port": store.port,
        "user": store.user,
        "password": rec.postgres_password,
        "dbname": database,
        "connect_timeout": 5,
    }
    if store.tls.enabled:
        params["sslmode"] = "verify-full" if store.tls.enable_host_verification else "verify-ca"
        params["sslrootcert"] = store.tls.ca_file
        if store.tls.server_name:
            params["host"], params["hostaddr"] = store.tls.server_name, store.host
    return psycopg.connect(**params)


def _pg_schema(rec: ClusterRecord, store: PostgresStore, database: str, wanted: str) -> CheckResult:
    name = f"schema {database}"
    with _connect(rec, store, database) as conn:
        row = conn.execute(
            "SELECT curr_version FROM schema_version WHERE version_partition = 0 AND db_name = %s",
            (database,),
        ).fetchone()
        history = [
            r[0] for r in conn.execute("SELECT new_version FROM schema_update_history").fetchall()
        ]
    return _versions(name, row[0] if row else None, history, wanted)


def _versions(name: str, current: str | None, history: list[str], wanted: str) -> CheckResult:
    if current is None:
        return CheckResult(name, False, f"no schema version recorded; server needs {wanted}")
    if current != wanted:
        return CheckResult(
            name, False, f"schema_version is {current}, the pinned server needs {wanted}"
        )
    if wanted not in history:
        return CheckResult(
            name, False, f"schema_version is {current} but schema_update_history has no {wanted}"
        )
    return CheckResult(name, True, f"{current} (server needs {wanted}); history has it")


def _pg_tls(rec: ClusterRecord, store: PostgresStore) -> CheckResult:
    with _connect(rec, store, store.database) as conn:
        server_ssl = conn.execute("SHOW ssl").fetchone()
        mine = conn.execute(
            "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        ).fetchone()
        plain_refused = None
        if store.tls.enabled:
            plain_refused = _plain_refused(rec, store)
    on = bool(server_ssl and server_ssl[0] == "on")
    encrypted = bool(mine and mine[0])
    if not store.tls.enabled:
        return CheckResult(
            "postgres TLS",
            True,
            f"off for this dev cluster (server ssl={'on' if on else 'off'}); production "
            "requires TLS with host verification",
        )
    ok = on and encrypted and bool(plain_refused)
    return CheckResult(
        "postgres TLS",
        ok,
        f"ssl={'on' if on else 'off'}, this connection {mine[1] if mine else '?'} verified "
        f"against {store.tls.ca_file}; plaintext TCP "
        f"{'refused' if plain_refused else 'ACCEPTED'}",
    )


def _plain_refused(rec: ClusterRecord, store: PostgresStore) -> bool:
    try:
        with psycopg.connect(
            host=store.host,
            port=store.port,
            user=store.user,
            password=rec.postgres_password,
            dbname=store.database,
            sslmode="disable",
            connect_timeout=5,
        ):
            return False
    except psycopg.OperationalError:
        return True


# ---- Temporal -------------------------------------------------------------------------------


def _namespaces(rec: ClusterRecord, spec: ClusterSpec) -> CheckResult:
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
    from temporalio.service import RPCError

    async def go() -> CheckResult:
        client = await cluster.connect_raw(rec)
        problems, seen = [], []
        for ns in spec.namespaces:
            try:
                desc = await client.workflow_service.describe_namespace(
                    DescribeNamespaceRequest(namespace=ns.name)
                )
            except RPCError as err:
                problems.append(f"{ns.name}: {err.message}")
                continue
            ttl = desc.config.workflow_execution_retention_ttl.ToSeconds()
            if ttl != ns.retention_seconds:
                problems.append(f"{ns.name}: retention {ttl}s, spec says {ns.retention_seconds}s")
            seen.append(ns.name)
        if problems:
            return CheckResult("namespaces", False, "; ".join(problems))
        return CheckResult("namespaces", True, f"{', '.join(seen)} registered with spec retention")

    return asyncio.run(go())

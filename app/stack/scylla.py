"""`haul db scylla-bootstrap`: the Temporal keyspace on ScyllaDB (or Cassandra), from
migrations/scylla, applied with cassandra-driver.

Everything about the target comes from the cluster's ClusterSpec: contact points, port,
datacenter, keyspace, replication per datacenter, user, password reference and TLS. The Helm
chart's keyspace creation cannot turn tablets off, and Temporal needs lightweight
transactions, so the keyspace comes from here: NetworkTopologyStrategy with the spec's
replication, plus `tablets = {'enabled': false}` when the server is ScyllaDB (detected from
its system tables). Files are `NNNN_description.cql` with `$keyspace`, `$replication` and
`$tablets` placeholders, loaded by app.core.migrate; each is applied once and recorded, with
its checksum, in `<keyspace>.haul_schema_migrations`. Every statement is idempotent (IF NOT
EXISTS), so two concurrent runs are safe.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from string import Template
from typing import Any

from app.core.migrate import Migration, MigrationError, load, pending
from app.stack.spec import CassandraStore, ClusterSpec

NTS = "org.apache.cassandra.locator.NetworkTopologyStrategy"
TRACKING_TABLE = "haul_schema_migrations"


class BootstrapError(MigrationError):
    """The keyspace cannot be bootstrapped safely; the message says what to do."""


def cql_store(spec: ClusterSpec) -> CassandraStore:
    """The spec's CQL store, or a clear refusal for a Postgres-backed cluster."""
    if not isinstance(spec.persistence, CassandraStore):
        raise BootstrapError(
            f"cluster {spec.name!r} keeps its default store on {spec.persistence.kind}, not on "
            "ScyllaDB or Cassandra; there is no keyspace to bootstrap"
        )
    return spec.persistence


def _password(store: CassandraStore) -> str:
    ref = store.password
    value = os.environ.get(ref.env_var) if ref is not None else None
    if value is None:
        where = f"environment variable {ref.env_var}" if ref else "a password reference"
        raise BootstrapError(
            f"{store.kind} store has user {store.user!r} but {where} is not set; set it (in "
            "Kubernetes, from the store's secret) or give the store password.env_var"
        )
    return value


def _ssl_context(store: CassandraStore) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=store.tls.ca_file)
    ctx.check_hostname = store.tls.enable_host_verification
    if not store.tls.enable_host_verification:
        ctx.verify_mode = ssl.CERT_NONE
    if store.tls.cert_file and store.tls.key_file:
        # Scylla with require_client_auth refuses a client without one.
        ctx.load_cert_chain(store.tls.cert_file, store.tls.key_file)
    return ctx


@contextmanager
def session(store: CassandraStore, timeout: float = 30.0) -> Iterator[Any]:
    """A cassandra-driver session to a ClusterSpec CQL store, pinned to its datacenter.

    The password, when the store has a user, is read from the environment variable its
    password reference names; TLS follows the store's tls settings.
    """
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import DCAwareRoundRobinPolicy

    profile = ExecutionProfile(
        load_balancing_policy=DCAwareRoundRobinPolicy(local_dc=store.datacenter),
        request_timeout=timeout,
    )
    kwargs: dict[str, Any] = {}
    if store.user:
        kwargs["auth_provider"] = PlainTextAuthProvider(store.user, _password(store))
    if store.tls.enabled:
        kwargs["ssl_context"] = _ssl_context(store)
        if store.tls.server_name:
            kwargs["ssl_options"] = {"server_hostname": store.tls.server_name}
    cluster = Cluster(
        store.hosts,
        port=store.port,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=10,
        # The control connection reads the schema on connect (2 s by default): a node that has
        # just started on a loaded host, behind a TLS handshake, needs longer.
        control_connection_timeout=timeout,
        **kwargs,
    )
    try:
        yield cluster.connect()
    finally:
        cluster.shutdown()


def is_scylla(sess: Any) -> bool:
    """ScyllaDB has its own tables in the system keyspace (scylla_local); Cassandra does not."""
    row = sess.execute(
        "SELECT table_name FROM system_schema.tables "
        "WHERE keyspace_name = 'system' AND table_name = 'scylla_local'"
    ).one()
    return row is not None


def replication_literal(replication: Mapping[str, int]) -> str:
    parts = ["'class': 'NetworkTopologyStrategy'"]
    parts += [f"'{dc}': {rf}" for dc, rf in sorted(replication.items())]
    return "{" + ", ".join(parts) + "}"


def statements(mig: Migration, values: Mapping[str, str]) -> list[str]:
    """A CQL file's statements with its `$name` placeholders filled in; comments dropped."""
    body = "\n".join(line for line in mig.text.splitlines() if not line.strip().startswith("--"))
    rendered = Template(body).substitute(values)
    return [s.strip() for s in rendered.split(";") if s.strip()]


def keyspace_replication(sess: Any, keyspace: str) -> dict[str, str] | None:
    row = sess.execute(
        "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s", (keyspace,)
    ).one()
    return dict(row.replication) if row else None


def replication_mismatch(actual: Mapping[str, str], wanted: Mapping[str, int]) -> str | None:
    """Why a keyspace's replication differs from the spec, or None when it matches."""
    cls = actual.get("class", "")
    if cls != NTS and not cls.endswith("NetworkTopologyStrategy"):
        return f"class is {cls.rsplit('.', 1)[-1] or '?'}, not NetworkTopologyStrategy"
    have = {k: int(v) for k, v in actual.items() if k != "class"}
    if have != dict(wanted):
        return f"replication factors are {have}, the spec asks for {dict(wanted)}"
    return None


def bootstrap(spec: ClusterSpec, directory: Path | None = None) -> list[str]:
    """Apply pending CQL files to the spec's keyspace; return the names applied by this call."""
    store = cql_store(spec)
    keyspace = store.keyspace
    replication = store.replication_for(spec.environment)
    files = load(directory, "scylla")
    with session(store) as sess:
        values = {
            "keyspace": keyspace,
            "replication": replication_literal(replication),
            "tablets": "AND tablets = {'enabled': false}" if is_scylla(sess) else "",
        }
        existing = keyspace_replication(sess, keyspace)
        if existing is not None and (why := replication_mismatch(existing, replication)):
            raise BootstrapError(
                f"keyspace {keyspace!r} already exists and its {why}; change it with "
                f"ALTER KEYSPACE {keyspace} WITH replication = {values['replication']} and run "
                "a full repair, or fix the spec's replication"
            )
        ran: list[Migration] = []
        try:
            for mig in pending(files, _recorded(sess, keyspace)):
                for stmt in statements(mig, values):
                    sess.execute(stmt)
                ran.append(mig)
        finally:
            _record(sess, keyspace, ran)
    return [m.name for m in ran]


def _tracking_exists(sess: Any, keyspace: str) -> bool:
    row = sess.execute(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s AND table_name = %s",
        (keyspace, TRACKING_TABLE),
    ).one()
    return row is not None


def _recorded(sess: Any, keyspace: str) -> dict[int, tuple[str, str]]:
    if not _tracking_exists(sess, keyspace):
        return {}
    rows = sess.execute(f"SELECT version, name, checksum FROM {keyspace}.{TRACKING_TABLE}")
    return {r.version: (r.name, r.checksum) for r in rows}


def _record(sess: Any, keyspace: str, ran: list[Migration]) -> None:
    if not ran or not _tracking_exists(sess, keyspace):
        return
    now = datetime.now(UTC)
    for mig in ran:
        # A lightweight transaction: a concurrent bootstrap cannot record a file twice.
        sess.execute(
            f"INSERT INTO {keyspace}.{TRACKING_TABLE} (version, name, checksum, applied_at) "
            "VALUES (%s, %s, %s, %s) IF NOT EXISTS",
            (mig.version, mig.name, mig.checksum, now),
        )

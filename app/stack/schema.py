"""Temporal's own schemas, applied with the schema tools built from the pinned server module.

Postgres (default store and visibility): `temporal-sql-tool create-database`, then
`setup-schema -v 0.0` (version tables only; a no-op on a database that is already further on),
then `update-schema --schema-name postgresql/v12/...` to the latest version the server embeds.

Cassandra/ScyllaDB: the keyspace comes from migrations/scylla first; then
`temporal-cassandra-tool setup-schema -v 0.0` and `update-schema --schema-name cassandra/temporal`.

Passwords go to the tools through their environment variables, never on the command line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.core.procs import run
from app.stack.builds import TemporalBinaries
from app.stack.spec import CassandraStore, PostgresStore

PG_SCHEMAS = {
    "default": ("postgresql/v12/temporal", "postgresql"),
    "visibility": ("postgresql/v12/visibility", "postgresql_visibility"),
}
CQL_SCHEMA = "cassandra/temporal"


class SchemaError(RuntimeError):
    """A schema tool failed; the message carries its output."""


@dataclass(frozen=True)
class Applied:
    target: str  # database or keyspace
    version: str


def _run(argv: list[str], env: dict[str, str], what: str, log: Path | None) -> str:
    proc = run(argv, what, env=env, log=log, error=SchemaError, tail=15)
    return proc.stdout + proc.stderr


def _sql_flags(store: PostgresStore) -> list[str]:
    flags = [
        "--plugin",
        "postgres12",
        "--ep",
        store.host,
        "-p",
        str(store.port),
        "-u",
        store.user,
        "--db",
        store.database,
    ]
    if store.tls.enabled:
        flags.append("--tls")
        if store.tls.ca_file:
            flags += ["--tls-ca-file", store.tls.ca_file]
        if store.tls.server_name:
            flags += ["--tls-server-name", store.tls.server_name]
        if not store.tls.enable_host_verification:
            flags.append("--tls-disable-host-verification")
    return flags


def setup_sql(
    tools: TemporalBinaries,
    store: PostgresStore,
    role: str,
    password: str,
    *,
    log: Path | None = None,
) -> Applied:
    """Create the database if missing and bring its schema to the server's version.

    role is "default" or "visibility" and picks the embedded schema.
    """
    schema_name, version_key = PG_SCHEMAS[role]
    env = {"SQL_PASSWORD": password}
    base = [str(tools.sql_tool), *_sql_flags(store)]
    try:
        _run([*base, "create-database"], env, f"creating database {store.database!r}", log)
    except SchemaError as err:
        if "already exists" not in str(err):
            raise
    _run([*base, "setup-schema", "-v", "0.0"], env, f"versioning {store.database!r}", log)
    _run(
        [*base, "update-schema", "--schema-name", schema_name],
        env,
        f"updating {store.database!r} to {schema_name}",
        log,
    )
    return Applied(store.database, tools.schema_versions[version_key])


def cql_tls_flags(store: CassandraStore) -> list[str]:
    """temporal-cassandra-tool's TLS flags for the store, with its client certificate (Scylla
    and a `--tls` local Cassandra refuse a client without one)."""
    if not store.tls.enabled:
        return []
    flags = ["--tls"]
    if store.tls.ca_file:
        flags += ["--tls-ca-file", store.tls.ca_file]
    if store.tls.cert_file and store.tls.key_file:
        flags += ["--tls-cert-file", store.tls.cert_file, "--tls-key-file", store.tls.key_file]
    if store.tls.server_name:
        flags += ["--tls-server-name", store.tls.server_name]
    if not store.tls.enable_host_verification:
        flags.append("--tls-disable-host-verification")
    return flags


def setup_cassandra(
    tools: TemporalBinaries,
    store: CassandraStore,
    *,
    password: str | None = None,
    log: Path | None = None,
) -> Applied:
    """Apply Temporal's schema to an existing keyspace (made by migrations/scylla)."""
    env = {"CASSANDRA_PASSWORD": password} if password else {}
    base = [
        str(tools.cassandra_tool),
        "--ep",
        ",".join(store.hosts),
        "-p",
        str(store.port),
        "-k",
        store.keyspace,
        "--dc",
        store.datacenter,
    ]
    if store.user:
        base += ["-u", store.user]
    base += cql_tls_flags(store)
    _run([*base, "setup-schema", "-v", "0.0"], env, f"versioning keyspace {store.keyspace!r}", log)
    _run(
        [*base, "update-schema", "--schema-name", CQL_SCHEMA],
        env,
        f"updating keyspace {store.keyspace!r} to {CQL_SCHEMA}",
        log,
    )
    return Applied(store.keyspace, tools.schema_versions["cassandra"])

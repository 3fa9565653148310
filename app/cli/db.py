"""`haul db ...`: the app database."""

from __future__ import annotations

import os

import typer
from rich.console import Console

from app.core.migrate import migrate as run_migrations

app = typer.Typer(help="The app database.", no_args_is_help=True)
console = Console()


def resolve_dsn(cluster: str | None, dsn: str | None = None) -> str:
    """A DSN from --dsn, or the target's app database (the local cluster's, or
    HAUL_DATABASE_URL)."""
    if dsn:
        return dsn
    from app.stack import targets

    found = targets.resolve(cluster).database_url
    if not found:
        raise typer.BadParameter(
            "no database given: pass --dsn or --cluster, set HAUL_DATABASE_URL, or start a "
            "cluster with `haul stack up`"
        )
    return found


@app.command("migrate")
def migrate(
    cluster: str | None = typer.Option(None, help="Local cluster whose app database to use."),
    dsn: str | None = typer.Option(None, help="Postgres DSN (else HAUL_DATABASE_URL)."),
) -> None:
    """Apply pending SQL migrations from migrations/postgres, each once, in a transaction."""
    applied = run_migrations(resolve_dsn(cluster, dsn))
    console.print(
        f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else "")
    )


@app.command("scylla-bootstrap")
def scylla_bootstrap(
    cluster: str | None = typer.Option(
        None, help="Local cassandra-backend cluster to bootstrap (its ClusterSpec)."
    ),
    hosts: str = typer.Option(
        "127.0.0.1", envvar="HAUL_CQL_HOSTS", help="Comma-separated contact points."
    ),
    port: int = typer.Option(9042, envvar="HAUL_CQL_PORT", help="CQL port."),
    keyspace: str = typer.Option("temporal", envvar="HAUL_CQL_KEYSPACE", help="Keyspace."),
    datacenter: str = typer.Option(
        "datacenter1", envvar="HAUL_CQL_DATACENTER", help="Local datacenter of this client."
    ),
    replication: str = typer.Option(
        "",
        envvar="HAUL_CQL_REPLICATION",
        help="Replication factor per datacenter, e.g. dc1=3,dc2=3 (default: <datacenter>=3).",
    ),
    user: str | None = typer.Option(None, envvar="HAUL_CQL_USER", help="CQL user."),
    password_env: str = typer.Option(
        "HAUL_CQL_PASSWORD", help="Name of the environment variable holding the password."
    ),
    tls_ca_file: str | None = typer.Option(
        None, envvar="HAUL_CQL_TLS_CA_FILE", help="CA bundle; enables TLS with verification."
    ),
) -> None:
    """Create the Temporal keyspace on ScyllaDB/Cassandra from migrations/scylla.

    NetworkTopologyStrategy with the given replication factor per datacenter, and tablets
    disabled when the server is ScyllaDB. Applies each CQL file once and records it in
    <keyspace>.haul_schema_migrations. Run it before temporal-cassandra-tool (the chart's
    schema job) on a new cluster; it is safe to run again.
    """
    from app.stack import scylla

    if cluster:
        from app.stack import cluster as stack_cluster
        from app.stack.registry import Registry
        from app.stack.spec import CassandraStore

        rec = Registry().get(cluster)
        if rec is None or rec.backend != "cassandra":
            raise typer.BadParameter(f"{cluster!r} is not a cassandra-backend local cluster")
        spec = stack_cluster.cluster_spec(rec)
        assert isinstance(spec.persistence, CassandraStore)
        target = scylla.CqlTarget.from_store(spec.persistence, spec.environment)
    else:
        target = scylla.CqlTarget(
            hosts=[h.strip() for h in hosts.split(",") if h.strip()],
            port=port,
            keyspace=keyspace,
            datacenter=datacenter,
            replication=scylla.parse_replication(replication) or {datacenter: 3},
            user=user,
            password=os.environ.get(password_env),
            ca_file=tls_ca_file,
        )
    applied = scylla.bootstrap(target)
    console.print(
        f"keyspace {target.keyspace!r}: applied {len(applied)} CQL file(s)"
        + (": " + ", ".join(applied) if applied else "")
    )

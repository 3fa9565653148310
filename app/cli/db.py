"""`haul db ...`: the app database."""

from __future__ import annotations

from pathlib import Path

import typer
from pydantic import ValidationError
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
    spec_file: Path | None = typer.Option(
        None,
        "--spec",
        help="A rendered ClusterSpec YAML file (infra mounts one into its bootstrap Job).",
    ),
) -> None:
    """Create the Temporal keyspace on ScyllaDB/Cassandra from migrations/scylla.

    Keyspace, contact points, datacenter, replication per datacenter and TLS all come from
    the cluster's ClusterSpec; a password, when the store has a user, from the environment
    variable its password reference names. NetworkTopologyStrategy, tablets disabled when the
    server is ScyllaDB. Applies each CQL file once and records it in
    <keyspace>.haul_schema_migrations. Run it before temporal-cassandra-tool (the chart's
    schema job) on a new cluster; it is safe to run again.
    """
    from app.stack import scylla
    from app.stack.spec import SpecError, load_spec

    if (cluster is None) == (spec_file is None):
        raise typer.BadParameter("give exactly one of --cluster and --spec")
    if spec_file is not None:
        try:
            spec = load_spec(spec_file)
        except (SpecError, ValidationError) as exc:
            raise typer.BadParameter(f"--spec {spec_file}: {exc}") from None
    else:
        from app.stack import cluster as stack_cluster
        from app.stack.registry import Registry

        rec = Registry().get(str(cluster))
        if rec is None or rec.backend != "cassandra":
            raise typer.BadParameter(f"{cluster!r} is not a cassandra-backend local cluster")
        spec = stack_cluster.cluster_spec(rec)
    applied = scylla.bootstrap(spec)
    console.print(
        f"keyspace {scylla.cql_store(spec).keyspace!r}: applied {len(applied)} CQL file(s)"
        + (": " + ", ".join(applied) if applied else "")
    )

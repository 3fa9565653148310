"""`haul db ...`: the app database."""

from __future__ import annotations

from pathlib import Path

import typer
from pydantic import ValidationError
from rich.console import Console

from app.core.migrate import migrate as run_migrations

app = typer.Typer(help="The app database.", no_args_is_help=True)
console = Console()


def _has_password(dsn: str, source: str) -> bool:
    """Whether a DSN (URL or key=value form, as libpq parses it) carries a password."""
    from psycopg import conninfo

    try:
        return bool(conninfo.conninfo_to_dict(dsn).get("password"))
    except Exception:  # psycopg's ProgrammingError; its text may quote the secret
        raise typer.BadParameter(
            f"{source} is not a valid Postgres DSN; give postgresql://user@host:port/db "
            "or key=value pairs"
        ) from None


def _read_dsn_file(path: Path) -> str:
    try:
        dsn = path.read_text().strip()
    except OSError as err:
        raise typer.BadParameter(f"--dsn-file {path}: cannot read it ({err.strerror})") from None
    if not dsn:
        raise typer.BadParameter(f"--dsn-file {path} is empty; write the DSN into it")
    return dsn


def resolve_dsn(
    cluster: str | None, dsn: str | None = None, dsn_file: Path | None = None
) -> str:
    """A DSN from --dsn-file, from a password-less --dsn, or the target's app database (the
    local cluster's, or HAUL_DATABASE_URL).

    A password on the command line is visible to every user through `ps`, so --dsn refuses
    one; it belongs in HAUL_DATABASE_URL, a --dsn-file, or libpq's ~/.pgpass."""
    if dsn and dsn_file:
        raise typer.BadParameter("give one of --dsn and --dsn-file, not both")
    if dsn_file is not None:
        return _read_dsn_file(dsn_file)
    if dsn:
        if _has_password(dsn, "--dsn"):
            raise typer.BadParameter(
                "--dsn holds a password, which `ps` shows to every user of this machine; "
                "put the DSN in the HAUL_DATABASE_URL environment variable or in a file "
                "passed with --dsn-file (or keep the password in ~/.pgpass)"
            )
        return dsn
    from app.core.settings import AppSettings
    from app.stack import targets

    if cluster is None and (from_env := AppSettings().database_url):
        return from_env

    found = targets.resolve(cluster).database_url
    if not found:
        raise typer.BadParameter(
            "no database given: pass --cluster or --dsn-file, set HAUL_DATABASE_URL, or "
            "start a cluster with `haul stack up`"
        )
    return found


@app.command("migrate")
def migrate(
    cluster: str | None = typer.Option(None, help="Local cluster whose app database to use."),
    dsn: str | None = typer.Option(
        None, help="Postgres DSN without a password (a password goes in HAUL_DATABASE_URL)."
    ),
    dsn_file: Path | None = typer.Option(
        None, help="A file holding the Postgres DSN (password allowed; keep it 0600)."
    ),
) -> None:
    """Apply pending SQL migrations from migrations/postgres, each once, in a transaction."""
    applied = run_migrations(resolve_dsn(cluster, dsn, dsn_file))
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

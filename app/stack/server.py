"""temporal-server on Postgres or on Cassandra, booted from the config ClusterSpec renders.

The starters run after the cluster's Postgres is up (cluster.up calls them):

- postgres: schemas for `temporal` and `temporal_visibility`, then temporal-server;
- cassandra: Cassandra, the keyspace from migrations/scylla, Temporal's keyspace schema, the
  visibility schema on Postgres, then temporal-server.

The server reads `config/temporal.yaml` (rendered, with `{{ env ... }}` in place of the
password) and watches `config/dynamicconfig.yaml`. The database password reaches it only
through its environment.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from app.core.procs import ensure_ports_free, spawn
from app.stack import authz, builds, cassandra, schema, scylla, tls
from app.stack.cluster import app_namespace, frontend_tls
from app.stack.registry import ClusterRecord, Registry
from app.stack.spec import CassandraStore, ClusterSpec, PostgresStore
from app.stack.spec_render import (
    FrontendSecurity,
    ListenConfig,
    dump_server_config,
    dump_yaml,
    render_dynamic_config,
    render_server_config,
)


def listen_config(rec: ClusterRecord) -> ListenConfig:
    """The server's ports, from the cluster's port block."""
    return ListenConfig(
        frontend_grpc=rec.port("frontend"),
        frontend_http=rec.port("frontend_http"),
        frontend_membership=rec.port("frontend_membership"),
        history_grpc=rec.port("history"),
        history_membership=rec.port("history_membership"),
        matching_grpc=rec.port("matching"),
        matching_membership=rec.port("matching_membership"),
        worker_grpc=rec.port("worker"),
        worker_membership=rec.port("worker_membership"),
        metrics=rec.port("metrics"),
        dynamic_config_path=str(rec.config_dir / "dynamicconfig.yaml"),
        # Only an authorizing (mTLS) cluster needs the internal frontend.
        internal_frontend_grpc=rec.port("internal_frontend") if rec.mtls else None,
        internal_frontend_membership=(
            rec.port("internal_frontend_membership") if rec.mtls else None
        ),
    )


def frontend_security(rec: ClusterRecord) -> FrontendSecurity | None:
    """The frontend's TLS for a `--tls` cluster; for `--mtls` also client certificates and the
    JWT authorizer (keys from the cluster's JWKS file)."""
    if not frontend_tls(rec):
        return None
    files = tls.ensure_certs(rec.tls_dir)
    key_source = None
    if rec.mtls:
        key_source = authz.ensure_local_auth(rec.tls_dir, app_namespace(rec)).key_source_uri
    return FrontendSecurity(
        cert_file=str(files.cert),
        key_file=str(files.key),
        ca_file=str(files.ca),
        server_name=tls.SERVER_NAME,
        require_client_auth=rec.mtls,
        key_source_uri=key_source,
    )


def write_config(rec: ClusterRecord, spec: ClusterSpec) -> Path:
    """Write the dynamic config and the server config; return the server config's path."""
    listen = listen_config(rec)
    cdir = rec.config_dir
    cdir.mkdir(parents=True, exist_ok=True)
    Path(listen.dynamic_config_path).write_text(dump_yaml(render_dynamic_config(spec)))
    path = cdir / "temporal.yaml"
    frontend = frontend_security(rec)
    path.write_text(dump_server_config(render_server_config(spec, listen, frontend)))
    return path


def _password_env(spec: ClusterSpec, password: str) -> dict[str, str]:
    env = {}
    for store in (spec.persistence, spec.visibility):
        if store.password is not None:
            env[store.password.env_var] = password
    return env


def _sql_schemas(
    rec: ClusterRecord, tools: builds.TemporalBinaries, stores: dict[str, PostgresStore]
) -> None:
    if "visibility" in stores:
        builds.ensure_btree_gin()
    for store in stores.values():
        if store.tls.enabled:
            tls.verify_postgres(
                store.host,
                store.port,
                store.tls,
                store.user,
                rec.postgres_password,
                "postgres",
            )
            break
    for role, store in stores.items():
        schema.setup_sql(
            tools, store, role, rec.postgres_password, log=rec.log("schema")
        )


def _services(listen: ListenConfig) -> list[str]:
    """The services to start: the server's defaults, or (when the config has an internal
    frontend, which `start` skips unless asked) all five by name."""
    if listen.internal_frontend_grpc is None:
        return []
    return ["frontend", "internal-frontend", "history", "matching", "worker"]


def _spawn_server(
    rec: ClusterRecord, spec: ClusterSpec, reg: Registry, tools: builds.TemporalBinaries
) -> int:
    listen = listen_config(rec)
    ensure_ports_free(listen.ports())
    config = write_config(rec, spec)
    pid = spawn(
        [str(tools.server), "--config-file", str(config), "--allow-no-auth", "start"]
        + [arg for svc in _services(listen) for arg in ("--service", svc)],
        rec.log("temporal"),
        env=_password_env(spec, rec.postgres_password),
        cwd=rec.path,
    )
    rec.track("temporal", pid)
    reg.put(rec)
    return pid


def start_on_postgres(rec: ClusterRecord, spec: ClusterSpec, reg: Registry) -> None:
    """Schemas for both Postgres databases, then temporal-server."""
    assert isinstance(spec.persistence, PostgresStore)
    tools = builds.temporal_binaries(spec.server_version)
    _sql_schemas(rec, tools, {"default": spec.persistence, "visibility": spec.visibility})
    _spawn_server(rec, spec, reg, tools)


def start_on_cassandra(rec: ClusterRecord, spec: ClusterSpec, reg: Registry) -> None:
    """Cassandra, its keyspace and schema, visibility on Postgres, then temporal-server."""
    store = spec.persistence
    assert isinstance(store, CassandraStore)
    tools = builds.temporal_binaries(spec.server_version)
    if not rec.running("cassandra"):
        rec.track("cassandra", cassandra.start(rec, store))
        reg.put(rec)
    else:
        cassandra.wait_cql(store, rec.pids["cassandra"], rec.log("cassandra"), timeout=60)
    scylla.bootstrap(spec)
    schema.setup_cassandra(tools, store, log=rec.log("schema"))
    _sql_schemas(rec, tools, {"visibility": spec.visibility})
    _spawn_server(rec, spec, reg, tools)


STARTERS: dict[str, Callable[[ClusterRecord, ClusterSpec, Registry], None]] = {
    "postgres": start_on_postgres,
    "cassandra": start_on_cassandra,
}

"""`haul stack up|down|status`: named local clusters, each a set of processes tracked by pid.

Every backend boots the same way: the cluster's Postgres first (app database, and for the
production-like backends the Temporal stores too), then Temporal, then the namespaces from
ClusterSpec. Clients reach a cluster through the envconfig profile named after it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from temporalio.api.workflowservice.v1 import GetClusterInfoRequest, GetSystemInfoRequest
from temporalio.client import Client
from temporalio.service import TLSConfig

from app.core import envconfig
from app.core.files import private_dir
from app.core.procs import (
    PortInUseError,
    StartupError,
    ensure_ports_free,
    log_tail,
    stop_pid,
)
from app.core.waiting import WaitTimeout, wait_until
from app.stack import authz, dev, namespaces, postgres, tls
from app.stack.registry import ClusterRecord, Registry, check_block, check_name
from app.stack.spec import ClusterSpec, check_shard_count
from app.stack.spec_render import render_dynamic_config, render_namespace_setup

log = logging.getLogger(__name__)

BACKENDS = ("dev", "postgres", "cassandra")
DEFAULT_SHARDS = 4
APP_NAMESPACE = "haul"
# Seconds an existing cluster's ports get to be released by its just-stopped processes.
PORT_RELEASE_SECONDS = 30.0

# Temporal starters for the production-like backends, registered by their modules.
TemporalStarter = Callable[[ClusterRecord, ClusterSpec, Registry], None]


def cluster_spec(record: ClusterRecord) -> ClusterSpec:
    """The ClusterSpec a local cluster boots from. On a TLS cluster every store is reached over
    TLS, and the CQL store (like Scylla in production) with a client certificate too."""
    files = tls.ensure_certs(record.tls_dir) if record.tls else None
    return ClusterSpec.local(
        record.name,
        # The dev server keeps its own store; its spec still carries namespaces and limits.
        backend="cassandra" if record.backend == "cassandra" else "postgres",
        postgres_port=record.port("postgres"),
        postgres_user=record.postgres_user,
        cassandra_port=record.port("cassandra_cql"),
        num_history_shards=record.num_history_shards or DEFAULT_SHARDS,
        tls=tls.settings_for(files) if files else None,
        cql_tls=tls.cql_settings_for(files) if files and record.backend == "cassandra" else None,
    )


def app_namespace(rec: ClusterRecord) -> str:
    """The namespace the app's workflows run in: `haul`, when the cluster has it."""
    return (
        APP_NAMESPACE
        if APP_NAMESPACE in rec.namespaces or not rec.namespaces
        else rec.namespaces[0]
    )


def frontend_tls(rec: ClusterRecord) -> bool:
    """Whether the cluster's frontend serves TLS: `--tls` on temporal-server (the dev
    server's frontend stays plaintext; its `--tls` covers Postgres only)."""
    return rec.tls and rec.backend != "dev"


def admin_profile(name: str) -> str:
    """The envconfig profile of an `--mtls` cluster's admin role (the stack's own calls and
    operators); the cluster's own profile carries the worker role."""
    return f"{name}.admin"


def _profiles(rec: ClusterRecord) -> list[envconfig.Profile]:
    namespace = app_namespace(rec)
    base = envconfig.Profile(name=rec.name, address=rec.frontend, namespace=namespace)
    if not frontend_tls(rec):
        return [base]
    files = tls.ensure_certs(rec.tls_dir)
    server_tls = envconfig.ProfileTLS(
        server_name=tls.SERVER_NAME, server_ca_cert_path=str(files.ca)
    )
    if not rec.mtls:
        return [base.model_copy(update={"tls": server_tls})]
    mutual = server_tls.model_copy(
        update={
            "client_cert_path": str(files.client_cert),
            "client_key_path": str(files.client_key),
        }
    )
    auth = authz.ensure_local_auth(rec.tls_dir, namespace)
    return [
        base.model_copy(update={"tls": mutual, "api_key": auth.worker_token}),
        base.model_copy(
            update={"name": admin_profile(rec.name), "tls": mutual, "api_key": auth.admin_token}
        ),
    ]


def _write_profiles(registry: Registry) -> None:
    envconfig.write(
        registry.profile_file, [p for rec in registry.all() for p in _profiles(rec)]
    )


def _alive(record: ClusterRecord, role: str) -> bool:
    return record.running(role)


def up(
    name: str = "default",
    backend: str = "dev",
    *,
    shards: int | None = None,
    port_base: int | None = None,
    headless: bool = False,
    tls: bool = False,
    mtls: bool = False,
    registry: Registry | None = None,
    timeout: float = 120.0,
) -> ClusterRecord:
    """Start (or confirm) a named cluster. Safe to call again on a running cluster.

    `tls`: Postgres, and temporal-server's frontend, serve TLS from the cluster's CA. `mtls`
    (implies `tls`; postgres and cassandra backends): the frontend also requires a client
    certificate and a JWT, and the cluster's profiles carry both (worker role in the cluster's
    profile, admin role in `<name>.admin`).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if mtls and backend == "dev":
        raise ValueError(
            "--mtls needs temporal-server (--backend postgres or cassandra); the dev server "
            "has no authorizer"
        )
    tls = tls or mtls
    check_name(name)
    reg = registry or Registry()
    with reg.locked():
        rec = reg.get(name)
        created = rec is None
        if rec is not None and rec.backend != backend:
            raise ValueError(
                f"cluster {name!r} exists with backend {rec.backend!r}, not {backend!r}; "
                f"run `haul stack down {name} --purge` first or choose another --name"
            )
        if rec is not None and ((tls and not rec.tls) or (mtls and not rec.mtls)):
            raise ValueError(
                f"cluster {name!r} exists without {'--mtls' if mtls else '--tls'}; certificates "
                f"are set at creation: run `haul stack down {name} --purge` first or choose "
                "another --name"
            )
        if rec is None:
            rec = ClusterRecord(
                name=name,
                backend=backend,
                port_base=reg.allocate_block(port_base, backend),
                data_dir=str(reg.data_dir(name)),
                postgres_password=postgres.new_password(),
                num_history_shards=shards or DEFAULT_SHARDS,
                tls=tls,
                mtls=mtls,
            )
            private_dir(rec.path)
        else:
            # A block recorded before the smallint limit was enforced fails here, not at boot.
            check_block(rec.port_base, backend)
        reg.put(rec)
    # Check every port this call will bind before starting anything, so a clash leaves no
    # half-started cluster behind.
    needed = {"postgres": rec.port("postgres")} if not _alive(rec, "postgres") else {}
    if backend == "dev" and not _alive(rec, "temporal"):
        needed |= {r: rec.port(r) for r in ("frontend", "frontend_http", "ui", "metrics")}
    try:
        # A cluster's own server that was just stopped may hold its ports a little longer
        # (a graceful shutdown under load closes the metrics listener last).
        ensure_ports_free(needed, wait=0.0 if created else PORT_RELEASE_SECONDS)
    except PortInUseError:
        if created:
            reg.remove(name)
        raise
    _start_postgres(rec, reg)
    if not _alive(rec, "temporal"):
        spec = cluster_spec(rec)
        if backend == "dev":
            rec.track(
                "temporal", dev.start_server(rec, render_dynamic_config(spec), headless=headless)
            )
            reg.put(rec)
        else:
            _starter(backend)(rec, spec, reg)
    _wait_frontend(rec, timeout)
    live_shards = asyncio.run(_register(rec))
    reg.put(rec)
    if shards is not None and backend != "dev":
        # numHistoryShards is fixed at first boot; the server would only warn about a change.
        check_shard_count(shards, live_shards)
    _write_profiles(reg)
    return rec


def _starter(backend: str) -> TemporalStarter:
    from app.stack import server

    return server.STARTERS[backend]


def _start_postgres(rec: ClusterRecord, reg: Registry) -> None:
    pgdata = rec.pgdata
    log = rec.log("postgres")
    if not _alive(rec, "postgres"):
        # pgserver's PostgreSQL has no SSL support; a TLS cluster runs one built with it.
        bindir = tls.ssl_bindir() if rec.tls else None
        postgres.init_cluster(pgdata, rec.postgres_user, rec.postgres_password, bindir)
        settings = tls.prepare_postgres(pgdata, tls.ensure_certs(rec.tls_dir)) if rec.tls else None
        rec.track("postgres", postgres.start(pgdata, rec.port("postgres"), log, settings, bindir))
        reg.put(rec)
    postgres.wait_ready(rec.dsn("postgres"), rec.pids["postgres"], log)
    postgres.ensure_database(rec.dsn("postgres"), rec.app_database)


async def connect_raw(record: ClusterRecord, namespace: str = "default") -> Client:
    """A plain client for stack management (no converter or interceptors needed); on an
    `--mtls` cluster it presents the client certificate and the admin role's token."""
    if not frontend_tls(record):
        return await Client.connect(record.frontend, namespace=namespace)
    files = tls.ensure_certs(record.tls_dir)
    client_tls = TLSConfig(server_root_ca_cert=files.ca.read_bytes(), domain=tls.SERVER_NAME)
    api_key = None
    if record.mtls:
        client_tls = TLSConfig(
            server_root_ca_cert=files.ca.read_bytes(),
            domain=tls.SERVER_NAME,
            client_cert=files.client_cert.read_bytes(),
            client_private_key=files.client_key.read_bytes(),
        )
        api_key = authz.ensure_local_auth(record.tls_dir, app_namespace(record)).admin_token
    return await Client.connect(
        record.frontend, namespace=namespace, tls=client_tls, api_key=api_key
    )


def _wait_frontend(rec: ClusterRecord, timeout: float) -> None:
    """Wait until the frontend answers GetSystemInfo, or fail with the tail of its log."""

    async def serving() -> bool:
        client = await connect_raw(rec)
        await client.workflow_service.get_system_info(GetSystemInfoRequest())
        return True

    try:
        wait_until(
            lambda: asyncio.run(serving()),
            what=f"Temporal on {rec.frontend} to serve",
            timeout=timeout,
            interval=0.5,
            retry_on=(Exception,),  # the frontend is still starting
            alive=lambda: _alive(rec, "temporal"),
        )
    except WaitTimeout as err:
        raise StartupError(f"{err}; its log says:\n{log_tail(rec.log('temporal'))}") from None


async def _register(rec: ClusterRecord) -> int:
    """Register the spec's namespaces and return the live history shard count
    (GetClusterInfo)."""
    client = await connect_raw(rec)
    rec.namespaces = await namespaces.register(client, render_namespace_setup(cluster_spec(rec)))
    info = await client.workflow_service.get_cluster_info(GetClusterInfoRequest())
    return int(info.history_shard_count)


def down(name: str, *, purge: bool = False, registry: Registry | None = None) -> ClusterRecord:
    """Stop only this cluster's pids; with purge, also delete its data and registry entry."""
    reg = registry or Registry()
    rec = reg.get(check_name(name))
    if rec is None:
        raise KeyError(f"no cluster named {name!r}; `haul stack status` lists them")
    # Temporal first, so it does not log a storm of persistence errors while its store stops.
    for role in sorted(rec.pids, key=lambda r: r in ("postgres", "cassandra")):
        _stop(rec, role)
    rec.pids, rec.stamps = {}, {}
    with reg.locked():
        if purge:
            reg.remove(name)
            # The registry's directory for this name, never a path read from the record.
            postgres.remove_data(reg.data_dir(name))
        else:
            reg.put(rec)
    _write_profiles(reg)
    return rec


def _stop(rec: ClusterRecord, role: str) -> None:
    """Stop one recorded process, only if its pid still names the process we started."""
    pid, expect = rec.pids[role], rec.stamps.get(role)
    if expect is None or not stop_pid(pid, expect=expect):
        log.info(
            "cluster %s: %s (pid %d) is gone or its pid now names another process; "
            "not signalled",
            rec.name,
            role,
            pid,
        )


def status(registry: Registry | None = None) -> list[tuple[ClusterRecord, dict[str, bool]]]:
    """Every registered cluster with the liveness of each of its processes."""
    return [
        (rec, {role: _alive(rec, role) for role in rec.pids})
        for rec in (registry or Registry()).all()
    ]

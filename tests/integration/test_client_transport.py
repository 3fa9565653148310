"""HAUL_GRPC_COMPRESSION chooses haul's clients' gRPC compression: gzip (the SDK's) or none.

Plain gRPC saves the zlib work on the worker, the starter and the server on loopback and
in-cluster links (loadtest/PROFILE.md); both must reach a real server.
"""

from __future__ import annotations

import pytest
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client
from temporalio.service import GrpcCompression

from app.platform.client import connect
from app.stack import targets
from app.stack.registry import ClusterRecord


async def _connect(rec: ClusterRecord) -> Client:
    target = targets.for_cluster(rec)
    return await connect(target.profile, config_file=target.config_file)


async def test_clients_send_uncompressed_grpc_when_asked(
    dev_cluster: ClusterRecord, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HAUL_GRPC_COMPRESSION", "none")
    client = await _connect(dev_cluster)
    assert client.service_client.config.grpc_compression == GrpcCompression.NONE
    # The server answers a plain client.
    info = await client.workflow_service.get_system_info(GetSystemInfoRequest())
    assert info.server_version


async def test_gzip_stays_the_default(
    dev_cluster: ClusterRecord, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HAUL_GRPC_COMPRESSION", raising=False)
    client = await _connect(dev_cluster)
    assert client.service_client.config.grpc_compression == GrpcCompression.GZIP
    info = await client.workflow_service.get_system_info(GetSystemInfoRequest())
    assert info.server_version

"""haul's clients send plain gRPC unless told otherwise (HAUL_GRPC_COMPRESSION).

The Python SDK gzips every request and response by default; on loopback and in-cluster links
that is CPU on the worker, the starter and the server for nothing (loadtest/PROFILE.md). A user
on a link where bytes cost more can bring gzip back.
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


async def test_clients_send_uncompressed_grpc_by_default(
    dev_cluster: ClusterRecord, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HAUL_GRPC_COMPRESSION", raising=False)
    client = await _connect(dev_cluster)
    assert client.service_client.config.grpc_compression == GrpcCompression.NONE
    # The server answers a plain client.
    info = await client.workflow_service.get_system_info(GetSystemInfoRequest())
    assert info.server_version


async def test_gzip_can_be_brought_back(
    dev_cluster: ClusterRecord, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HAUL_GRPC_COMPRESSION", "gzip")
    client = await _connect(dev_cluster)
    assert client.service_client.config.grpc_compression == GrpcCompression.GZIP
    info = await client.workflow_service.get_system_info(GetSystemInfoRequest())
    assert info.server_version

"""Idempotent namespace and search-attribute registration.

temporal-server creates no `default` namespace, so every namespace in ClusterSpec is registered
here with explicit retention, and its search attributes are added where missing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    RegisterNamespaceRequest,
    UpdateNamespaceRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode


async def register(client: Client, setups: Iterable[Mapping[str, Any]]) -> list[str]:
    """Register each namespace (or fix its retention) and add missing search attributes.

    `setups` is what `render_namespace_setup(spec)` returns: name, retention_seconds,
    description, and search_attributes as IndexedValueType enum names.
    """
    done = []
    for entry in setups:
        ns = SimpleNamespace(**entry)
        retention = Duration()
        retention.FromTimedelta(timedelta(seconds=ns.retention_seconds))
        try:
            desc = await client.workflow_service.describe_namespace(
                DescribeNamespaceRequest(namespace=ns.name)
            )
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            try:
                await client.workflow_service.register_namespace(
                    RegisterNamespaceRequest(
                        namespace=ns.name,
                        description=ns.description,
                        workflow_execution_retention_period=retention,
                    )
                )
            except RPCError as reg_err:
                if reg_err.status != RPCStatusCode.ALREADY_EXISTS:
                    raise
        else:
            if desc.config.workflow_execution_retention_ttl.ToSeconds() != ns.retention_seconds:
                req = UpdateNamespaceRequest(namespace=ns.name)
                req.config.workflow_execution_retention_ttl.CopyFrom(retention)
                await client.workflow_service.update_namespace(req)
        await _add_search_attributes(client, ns.name, ns.search_attributes)
        done.append(ns.name)
    return done


async def _add_search_attributes(client: Client, namespace: str, wanted: Mapping[str, str]) -> None:
    if not wanted:
        return
    # A namespace registered a moment ago can take a cache refresh to be visible everywhere.
    for attempt in range(30):
        try:
            existing = await client.operator_service.list_search_attributes(
                ListSearchAttributesRequest(namespace=namespace)
            )
            break
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND or attempt == 29:
                raise
            await asyncio.sleep(0.5)
    have = set(existing.custom_attributes) | set(existing.system_attributes)
    missing = {k: IndexedValueType.Value(v) for k, v in wanted.items() if k not in have}
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )

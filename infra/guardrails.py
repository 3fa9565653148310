"""Guardrails against the deployed state, checked at preview.

The deployed state is this stack's previous outputs (`clusters`: shard count and server version
per cluster), read through a StackReference. A changed numHistoryShards and a server upgrade
that skips a minor version are refused, naming both values; nothing Temporal-related is
declared until the check passes.
"""

from __future__ import annotations

from typing import Any

from app.stack.spec import ClusterSpec, SpecError, check_shard_count
from app.versions import minor


class GuardrailError(Exception):
    """The requested change cannot be applied to the deployed cluster."""


def check_server_version(cluster: str, requested: str, deployed: str) -> None:
    """Temporal supports upgrades one minor version at a time, and no downgrades."""
    req, dep = minor(requested), minor(deployed)
    if req[0] != dep[0] or req[1] > dep[1] + 1:
        step = f"{dep[0]}.{dep[1] + 1}"
        raise GuardrailError(
            f"cluster {cluster}: server version {requested} skips a minor version from the "
            f"deployed {deployed}; upgrade one minor at a time (next: {step}.x), letting each "
            "schema upgrade finish"
        )
    if req < dep:
        raise GuardrailError(
            f"cluster {cluster}: server version {requested} is older than the deployed "
            f"{deployed}; Temporal does not support downgrades"
        )


def check_cluster(spec: ClusterSpec, deployed_clusters: Any) -> ClusterSpec:
    """Refuse `spec` if it conflicts with what is deployed; return it unchanged otherwise."""
    deployed = (deployed_clusters or {}).get(spec.name)
    if not deployed:
        return spec  # first deploy of this cluster
    shards = deployed.get("numHistoryShards")
    if shards is not None:
        try:
            check_shard_count(spec.num_history_shards, int(shards))
        except SpecError as exc:
            raise GuardrailError(f"cluster {spec.name}: {exc}") from None
    version = deployed.get("serverVersion")
    if version:
        check_server_version(spec.name, spec.server_version, str(version))
    return spec


def deployed_state(spec: ClusterSpec) -> dict[str, Any]:
    """What the next run's guardrails compare against (exported as stack output `clusters`)."""
    return {"numHistoryShards": spec.num_history_shards, "serverVersion": spec.server_version}

"""Build each cluster's ClusterSpec from the stack config and the deployed endpoints.

The stack file's `spec` block is ClusterSpec's own input (shards, namespaces, dynamic config,
pool sizes); infra adds only what it knows: the database hosts, the TLS CA paths in the server
pods, the Kubernetes secret with the password, and the environment. Everything the chart needs
about Temporal itself is then rendered by `app.stack.spec_render.render_helm_values`.
"""

from __future__ import annotations

from typing import Any

from config import ClusterConfig, ConfigError, StackConfig
from pydantic import ValidationError

from app.stack.spec import ClusterSpec, SpecError

# Stand-in host used to validate a spec before the database exists (at config load time).
PENDING_HOST = "pending.invalid"
SCYLLA_CA_MOUNT = "/etc/temporal/scylla-ca/ca.crt"


def password_secret(cluster: str) -> str:
    """The Kubernetes secret (in the cluster's namespace) holding the RDS password."""
    return f"{cluster}-postgres-credentials"


def scylla_keyspace(cluster: ClusterConfig) -> str:
    return str(cluster.spec.get("persistence", {}).get("keyspace", "temporal"))


def build_spec(
    stack: StackConfig,
    cluster: ClusterConfig,
    postgres_host: str = PENDING_HOST,
    scylla_hosts: list[str] | None = None,
) -> ClusterSpec:
    data: dict[str, Any] = dict(cluster.spec)
    data["name"] = cluster.name
    data["environment"] = stack.environment
    pg = cluster.postgres
    postgres_common = {
        "host": postgres_host,
        "port": 5432,
        "user": "temporal",
        "password": {"existing_secret": password_secret(cluster.name), "secret_key": "password"},
        "tls": {
            "enabled": pg.tls.enabled,
            "enable_host_verification": pg.tls.enabled and pg.tls.verify_host,
            "ca_file": stack.tls.rds_ca_mount_path if pg.tls.enabled else None,
            "server_name": postgres_host if pg.tls.enabled and pg.tls.verify_host else None,
        },
    }
    visibility = dict(data.pop("visibility", {}))
    visibility.setdefault("database", "temporal_visibility")
    data["visibility"] = {**visibility, **postgres_common}
    persistence = dict(data.pop("persistence", {}))
    if cluster.store == "postgres":
        persistence.setdefault("database", "temporal")
        data["persistence"] = {**persistence, **postgres_common}
    else:
        assert cluster.scylla is not None
        sc = cluster.scylla
        data["persistence"] = {
            **persistence,
            "kind": "scylla",
            "hosts": scylla_hosts or [PENDING_HOST],
            "port": 9042,
            "datacenter": sc.datacenter,
            "keyspace": scylla_keyspace(cluster),
            "replication": {sc.datacenter: sc.replication_factor},
            "create_database": False,
            "tls": {"enabled": True, "enable_host_verification": True, "ca_file": SCYLLA_CA_MOUNT},
        }
    try:
        return ClusterSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            ".".join(str(p) for p in e["loc"]) + ": " + e["msg"].removeprefix("Value error, ")
            if e["loc"]
            else e["msg"].removeprefix("Value error, ")
            for e in exc.errors()
        )
        raise ConfigError(f"haul:clusters[{cluster.name}].spec: {problems}") from None
    except SpecError as exc:
        raise ConfigError(f"haul:clusters[{cluster.name}].spec: {exc}") from None


def check_specs(stack: StackConfig) -> dict[str, ClusterSpec]:
    """Validate every cluster's spec before any resource is declared."""
    return {c.name: build_spec(stack, c) for c in stack.clusters}

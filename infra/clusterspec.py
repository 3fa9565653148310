"""What infra adds to each cluster's ClusterSpec.

The stack file's `spec` block is ClusterSpec input in ClusterSpec's own names: shards,
namespaces, dynamic config, and the stores (backend kind, keyspace, datacenter, replication,
TLS, pool sizes). Infra adds only what it alone knows: the cluster's name and the stack's
environment, where the stores are reached (the RDS address once the instance exists, the Scylla
Operator's client Service), the Kubernetes secret with the password, and where the CA bundles
are mounted in the server pods. Everything the chart needs about Temporal is then rendered by
`app.stack.spec_render.render_helm_values`, and the Scylla bootstrap Job reads the same spec.
"""

from __future__ import annotations

from typing import Any

from app.stack.spec import ClusterSpec, PostgresStore, TLSSettings

# Stand-in host until the RDS instance exists (validation at config load time, preview).
PENDING_HOST = "pending.invalid"
SCYLLA_CA_MOUNT = "/etc/temporal/scylla-ca/ca.crt"
# Temporal's CQL client certificate (Scylla requires one): the server pods mount it here, and
# so does the keyspace bootstrap Job, which reads the same spec.
SCYLLA_CLIENT_CERT_DIR = "/etc/temporal/scylla-client"
SCYLLA_CLIENT_CERT = f"{SCYLLA_CLIENT_CERT_DIR}/tls.crt"
SCYLLA_CLIENT_KEY = f"{SCYLLA_CLIENT_CERT_DIR}/tls.key"
POSTGRES_PORT = 5432
CQL_PORT = 9042
POSTGRES_USER = "temporal"
# Temporal's CQL role on Scylla (PasswordAuthenticator); made by the keyspace bootstrap Job.
SCYLLA_USER = "temporal"


def password_secret(cluster: str) -> str:
    """The Kubernetes secret (in the cluster's namespace) holding the RDS password."""
    return f"{cluster}-postgres-credentials"


def scylla_password_secret(cluster: str) -> str:
    """The Kubernetes secret (in the cluster's and the Scylla namespace) with the CQL password."""
    return f"{cluster}-scylla-credentials"


def scylla_namespace(cluster: str) -> str:
    return f"{cluster}-scylla"


def scylla_hosts(cluster: str) -> list[str]:
    """The Scylla Operator's client Service for this cluster's ScyllaCluster."""
    return [f"scylla-client.{scylla_namespace(cluster)}.svc.cluster.local"]


def _with_ca(store: dict[str, Any], ca_file: str) -> dict[str, Any]:
    tls = dict(store.get("tls") or {})
    if tls.get("enabled"):
        tls["ca_file"] = ca_file
    return {**store, "tls": tls}


def _with_client_cert(store: dict[str, Any]) -> dict[str, Any]:
    tls = dict(store.get("tls") or {})
    if tls.get("enabled"):
        tls.update(cert_file=SCYLLA_CLIENT_CERT, key_file=SCYLLA_CLIENT_KEY)
    return {**store, "tls": tls}


def spec_input(cluster: dict[str, Any], environment: Any, rds_ca_mount: str) -> dict[str, Any]:
    """A raw stack-file cluster with its `spec` completed by infra's facts (RDS host pending).

    Infra's facts win over the same keys in the stack file: they describe what infra builds.
    """
    name = cluster.get("name")
    data = dict(cluster.get("spec") or {})
    data.update(name=name, environment=environment)
    on_rds = {
        "host": PENDING_HOST,
        "port": POSTGRES_PORT,
        "user": POSTGRES_USER,
        "password": {"existing_secret": password_secret(str(name)), "secret_key": "password"},
    }
    visibility = {"database": "temporal_visibility", **dict(data.get("visibility") or {})}
    data["visibility"] = _with_ca({**visibility, **on_rds}, rds_ca_mount)
    persistence = dict(data.get("persistence") or {})
    if persistence.get("kind") in ("scylla", "cassandra"):
        cql = {
            "hosts": scylla_hosts(str(name)),
            "port": CQL_PORT,
            "user": SCYLLA_USER,
            "password": {
                "existing_secret": scylla_password_secret(str(name)),
                "secret_key": "password",
            },
        }
        data["persistence"] = _with_client_cert(
            _with_ca({**persistence, **cql}, SCYLLA_CA_MOUNT)
        )
    else:
        data["persistence"] = _with_ca({**persistence, **on_rds}, rds_ca_mount)
    return {**cluster, "spec": data}


def _on_host(store: Any, host: str) -> Any:
    if not isinstance(store, PostgresStore):
        return store
    tls: TLSSettings = store.tls
    if tls.enable_host_verification:
        tls = tls.model_copy(update={"server_name": host})
    return store.model_copy(update={"host": host, "tls": tls})


def deployed_spec(spec: ClusterSpec, postgres_host: str) -> ClusterSpec:
    """`spec` on its RDS instance's address, which TLS host verification checks."""
    return spec.model_copy(
        update={
            "persistence": _on_host(spec.persistence, postgres_host),
            "visibility": _on_host(spec.visibility, postgres_host),
        }
    )

"""TemporalCluster: the official Temporal Helm chart, deployed with helm.v3.Release.

Every Temporal value (stores, shards, namespaces, dynamic config) is rendered by
`app.stack.spec_render.render_helm_values` from the cluster's ClusterSpec. This component only adds
deployment concerns on keys ClusterSpec does not render: replicas, resources, PDBs, the
ServiceMonitor, the internal load balancer, the Web UI and admintools switches, CA bundle
mounts and optional mTLS. `merge_values` refuses any overlay that would change a rendered key,
except the explicit mappings listed in EXPLICIT_MAPPINGS.

helm.v3.Release runs the chart's hooks in order: the schema job (create databases, then
setup/update schemas) completes before the new server pods roll out.
"""

from __future__ import annotations

import shlex
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_tls as tls
from clusterspec import (
    SCYLLA_CA_MOUNT,
    SCYLLA_CLIENT_CERT_DIR,
    password_secret,
    scylla_password_secret,
)
from config import ClusterConfig
from pydantic import BaseModel, ConfigDict, SkipValidation

from app import versions
from app.stack import authz
from app.stack.spec import ClusterSpec
from app.stack.spec_render import render_helm_values, render_namespace_commands

FRONTEND_PORTS = (7233, 7243)
METRICS_PORT = 9090
SERVICES = ("frontend", "history", "matching", "worker")
# The chart's values key for the internal frontend (a service name, so hyphenated).
INTERNAL_FRONTEND = "internal-frontend"
INTERNAL_LB = {
    "service.beta.kubernetes.io/aws-load-balancer-type": "nlb",
    "service.beta.kubernetes.io/aws-load-balancer-internal": "true",
}


# The JWKS the frontend's claim mapper verifies tokens with: a ConfigMap mounted into every
# server pod, read as a file URI (server 1.32 reads file:// key sources).
JWKS_DIR = "/etc/temporal/jwks"
JWKS_URI = f"file://{JWKS_DIR}/jwks.json"


class ValuesConflict(ValueError):
    pass


SCYLLA_CLIENT_CERT_SECRET = "scylla-client-cert"


def jwks_config_map(cluster: str) -> str:
    return f"{cluster}-jwks"


def admin_token_secret(cluster: str) -> str:
    """The admin role's token, in the cluster's namespace (the namespace-setup Job)."""
    return f"{cluster}-admin-token"


def explicit_mappings(spec: ClusterSpec) -> dict[tuple[str, ...], Any]:
    """Values ClusterSpec holds but its Helm renderer does not emit (yet); mapped here."""
    return {("server", "image", "tag"): spec.server_version}


def merge_values(
    rendered: dict, overlay: dict, allowed: dict[tuple[str, ...], Any], path=()
) -> dict:
    """Deep-merge `overlay` into `rendered`; a rendered leaf may only change via `allowed`."""
    out = dict(rendered)
    for key, value in overlay.items():
        here = (*path, key)
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_values(out[key], value, allowed, here)
        elif key in out and out[key] != value and here not in allowed:
            raise ValuesConflict(
                f"Helm value {'.'.join(here)} is rendered by ClusterSpec as {out[key]!r}; infra "
                f"must not override it with {value!r}. Change the ClusterSpec instead"
            )
        else:
            out[key] = value
    for here, value in allowed.items() if not path else ():
        node = out
        for part in here[:-1]:
            node = node.setdefault(part, {})
        node[here[-1]] = value
    return out


def issuer_name(cluster: str) -> str:
    return f"{cluster}-ca"


def namespace_setup_script(spec: ClusterSpec) -> str:
    """Register every namespace and search attribute in the spec, idempotently.

    The chart's job creates namespaces but not search attributes; this runs ClusterSpec's own
    commands after the release. An "already exists" answer is success; anything else fails.
    """
    lines = [
        "set -u",
        "until temporal operator cluster health >/dev/null 2>&1; do sleep 5; done",
        "run() {",
        '  if out=$("$@" 2>&1); then echo "done: $*"; return 0; fi',
        '  case "$out" in',
        '    *already*|*Already*) echo "exists: $*" ;;',
        '    *) echo "$out" >&2; exit 1 ;;',
        "  esac",
        "}",
    ]
    lines += [f"run {shlex.join(cmd)}" for cmd in render_namespace_commands(spec)]
    return "\n".join(lines) + "\n"


def namespace_job_spec(spec: ClusterSpec, cluster: ClusterConfig) -> dict[str, Any]:
    env = [{"name": "TEMPORAL_ADDRESS", "value": f"{cluster.name}-frontend:{FRONTEND_PORTS[0]}"}]
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    if cluster.mtls:
        tls_dir = "/etc/temporal/client-tls"
        env += [
            {"name": "TEMPORAL_TLS_CLIENT_CERT_PATH", "value": f"{tls_dir}/tls.crt"},
            {"name": "TEMPORAL_TLS_CLIENT_KEY_PATH", "value": f"{tls_dir}/tls.key"},
            {"name": "TEMPORAL_TLS_CA_PATH", "value": f"{tls_dir}/ca.crt"},
            {"name": "TEMPORAL_TLS_SERVER_NAME", "value": f"{cluster.name}-frontend"},
        ]
        # The certificate only reaches the frontend; the admin token is what may register.
        env.append(
            {
                "name": "TEMPORAL_API_KEY",
                "valueFrom": {
                    "secretKeyRef": {"name": admin_token_secret(cluster.name), "key": "token"}
                },
            }
        )
        volumes.append(
            {"name": "client-tls", "secret": {"secretName": f"{cluster.name}-admin-client-tls"}}
        )
        mounts.append({"name": "client-tls", "mountPath": tls_dir, "readOnly": True})
    return {
        "backoffLimit": 6,
        "activeDeadlineSeconds": 1800,
        "template": {
            "metadata": {
                "labels": {
                    "app.kubernetes.io/name": "namespace-setup",
                    "app.kubernetes.io/instance": cluster.name,
                }
            },
            "spec": {
                "restartPolicy": "OnFailure",
                "securityContext": {"runAsNonRoot": True, "runAsUser": 1000},
                "nodeSelector": {"haul.dev/node-group": "temporal"},
                "containers": [
                    {
                        "name": "namespace-setup",
                        "image": f"temporalio/admin-tools:{versions.TEMPORAL_ADMINTOOLS_IMAGE_TAG}",
                        "command": ["sh", "-c", namespace_setup_script(spec)],
                        "env": env,
                        "volumeMounts": mounts,
                        "resources": {
                            "requests": {"cpu": "50m", "memory": "64Mi"},
                            "limits": {"cpu": "200m", "memory": "128Mi"},
                        },
                        "securityContext": {
                            "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]},
                        },
                    }
                ],
                "volumes": volumes,
            },
        },
    }


def frontend_address(cluster: str) -> str:
    return f"{cluster}-frontend.{cluster}.svc.cluster.local:{FRONTEND_PORTS[0]}"


def frontend_metrics_url(cluster: str) -> str:
    """Every frontend pod's /metrics, through the chart's headless Service (see
    app.platform.actions for the dns+ form)."""
    return (
        f"dns+http://{cluster}-frontend-headless.{cluster}.svc.cluster.local:{METRICS_PORT}/metrics"
    )


def deployment_overlay(
    cluster: ClusterConfig, prod: bool, ca_mount_path: str, web_secret: str | None
) -> dict[str, Any]:
    """Chart values that are about running the cluster, not about Temporal's config."""
    ca_dir = ca_mount_path.rsplit("/", 1)[0]
    volumes = [{"name": "rds-ca", "configMap": {"name": "rds-ca-bundle"}}]
    mounts = [{"name": "rds-ca", "mountPath": ca_dir, "readOnly": True}]
    if cluster.backend == "scylla":
        volumes.append({"name": "scylla-ca", "configMap": {"name": "scylla-ca"}})
        mounts.append(
            {"name": "scylla-ca", "mountPath": SCYLLA_CA_MOUNT.rsplit("/", 1)[0], "readOnly": True}
        )
        # Scylla requires a client certificate; the spec's tls.cert_file/key_file point here.
        volumes.append(
            {"name": "scylla-client-cert", "secret": {"secretName": SCYLLA_CLIENT_CERT_SECRET}}
        )
        mounts.append(
            {"name": "scylla-client-cert", "mountPath": SCYLLA_CLIENT_CERT_DIR, "readOnly": True}
        )
    server: dict[str, Any] = {
        "nodeSelector": {"haul.dev/node-group": "temporal"},
        "additionalVolumes": volumes,
        "additionalVolumeMounts": mounts,
        "metrics": {"serviceMonitor": {"enabled": True, "interval": "30s"}},
    }
    for svc in SERVICES:
        sc = getattr(cluster.services, svc)
        server[svc] = {
            "replicaCount": sc.replicas,
            "resources": sc.resources.k8s(),
            "podDisruptionBudget": {"maxUnavailable": 1},
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": "topology.kubernetes.io/zone",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {
                        "matchLabels": {
                            "app.kubernetes.io/component": svc,
                            "app.kubernetes.io/instance": cluster.name,
                        }
                    },
                }
            ],
        }
    server["frontend"]["service"] = {"type": "LoadBalancer", "annotations": INTERNAL_LB}
    if cluster.mtls:
        # A certificate from the cluster CA only gets a caller to the frontend; the default
        # claim mapper and authorizer decide what its JWT allows. The server's own system
        # workers carry no JWT, so they use the internal frontend (no authorizer, internode).
        volumes.append({"name": "jwks", "configMap": {"name": jwks_config_map(cluster.name)}})
        mounts.append({"name": "jwks", "mountPath": JWKS_DIR, "readOnly": True})
        server["config"] = {"authorization": authz.server_authorization(JWKS_URI)}
        # Chart 1.x reads `server.internal-frontend` (its templates index the service name);
        # an `internalFrontend` key is ignored, leaving no internal frontend at all.
        server[INTERNAL_FRONTEND] = {"enabled": True}
        server["tls"] = {
            "internode": {
                "enabled": True,
                "secretName": f"{cluster.name}-internode-tls",
                "serverName": f"{cluster.name}-internode",
            },
            "frontend": {
                "enabled": True,
                "secretName": f"{cluster.name}-frontend-tls",
                "serverName": f"{cluster.name}-frontend",
                "requireClientAuth": True,
            },
        }
    web: dict[str, Any] = {"enabled": cluster.web.enabled}
    if cluster.web.enabled and cluster.web.oidc is not None:
        oidc = cluster.web.oidc
        web.update(
            {
                "replicaCount": 2,
                "service": {"type": "ClusterIP"},
                "resources": {
                    "requests": {"cpu": "100m", "memory": "128Mi"},
                    "limits": {"cpu": "500m", "memory": "256Mi"},
                },
                "podDisruptionBudget": {"maxUnavailable": 1},
                "additionalEnv": [
                    {"name": "TEMPORAL_AUTH_ENABLED", "value": "true"},
                    {"name": "TEMPORAL_AUTH_PROVIDER_URL", "value": oidc.issuer_url},
                    {"name": "TEMPORAL_AUTH_CLIENT_ID", "value": oidc.client_id},
                    {"name": "TEMPORAL_AUTH_CALLBACK_URL", "value": oidc.callback_url},
                    {
                        "name": "TEMPORAL_AUTH_CLIENT_SECRET",
                        "valueFrom": {"secretKeyRef": {"name": web_secret, "key": "client-secret"}},
                    },
                ],
            }
        )
    return {
        "fullnameOverride": cluster.name,
        "server": server,
        "admintools": {"enabled": cluster.admintools and not prod},
        "web": web,
    }


def render_values(
    spec: ClusterSpec,
    cluster: ClusterConfig,
    prod: bool,
    ca_mount_path: str,
    web_secret: str | None,
) -> dict[str, Any]:
    return merge_values(
        render_helm_values(spec),
        deployment_overlay(cluster, prod, ca_mount_path, web_secret),
        explicit_mappings(spec),
    )


class TemporalClusterArgs(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    cluster: SkipValidation[ClusterConfig]
    prod: bool
    # Output[ClusterSpec], built once the database endpoints are known and the guardrails pass.
    spec: Any
    db_password: Any
    rds_ca_pem: str
    rds_ca_mount_path: str
    scylla_ca_pem: Any = None
    # Temporal's CQL password (the chart reads it through the spec's password reference).
    scylla_password: Any = None
    # Temporal's CQL client certificate and key (Outputs), from the Scylla CA.
    scylla_client_cert: Any = None
    scylla_client_key: Any = None
    web_client_secret: Any = None
    # Namespaces whose pods may call the frontend (the workers, the load generator) and KEDA.
    client_namespaces: list[str]
    # The namespace the worker role's token may write (the app's).
    app_namespace: str = "haul"
    # Namespaces whose pods may read the frontends' metrics directly (the load generator's
    # action accounting), besides Prometheus in `monitoring`.
    metrics_readers: list[str] = []
    depends_on: list[Any] = []


class TemporalCluster(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: TemporalClusterArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("haul:temporal:TemporalCluster", name, None, opts)
        cfg = args.cluster
        ns_name = cfg.name
        child = pulumi.ResourceOptions(parent=self)
        ns = k8s.core.v1.Namespace(
            f"{name}-ns",
            metadata={"name": ns_name, "labels": {"haul.dev/temporal-cluster": cfg.name}},
            opts=child,
        )
        in_ns = pulumi.ResourceOptions(parent=self, depends_on=[ns])
        prereqs: list[pulumi.Resource] = [
            k8s.core.v1.Secret(
                f"{name}-db-password",
                metadata={"name": password_secret(cfg.name), "namespace": ns_name},
                type="Opaque",
                string_data={"password": args.db_password},
                opts=in_ns,
            ),
            k8s.core.v1.ConfigMap(
                f"{name}-rds-ca",
                metadata={"name": "rds-ca-bundle", "namespace": ns_name},
                data={args.rds_ca_mount_path.rsplit("/", 1)[1]: args.rds_ca_pem},
                opts=in_ns,
            ),
        ]
        if args.scylla_password is not None:
            prereqs.append(
                k8s.core.v1.Secret(
                    f"{name}-scylla-password",
                    metadata={"name": scylla_password_secret(cfg.name), "namespace": ns_name},
                    type="Opaque",
                    string_data={"password": args.scylla_password},
                    opts=in_ns,
                )
            )
        if args.scylla_ca_pem is not None:
            prereqs.append(
                k8s.core.v1.ConfigMap(
                    f"{name}-scylla-ca",
                    metadata={"name": "scylla-ca", "namespace": ns_name},
                    data={SCYLLA_CA_MOUNT.rsplit("/", 1)[1]: args.scylla_ca_pem},
                    opts=in_ns,
                )
            )
        if args.scylla_client_cert is not None:
            prereqs.append(
                k8s.core.v1.Secret(
                    f"{name}-scylla-client-cert",
                    metadata={"name": SCYLLA_CLIENT_CERT_SECRET, "namespace": ns_name},
                    type="kubernetes.io/tls",
                    string_data={
                        "tls.crt": args.scylla_client_cert,
                        "tls.key": args.scylla_client_key,
                    },
                    opts=in_ns,
                )
            )
        web_secret = None
        if cfg.web.enabled:
            web_secret = f"{cfg.name}-web-oidc"
            prereqs.append(
                k8s.core.v1.Secret(
                    f"{name}-web-oidc",
                    metadata={"name": web_secret, "namespace": ns_name},
                    type="Opaque",
                    string_data={"client-secret": args.web_client_secret},
                    opts=in_ns,
                )
            )
        # Role tokens (worker, admin) when the frontend runs the authorizer; Outputs, secret.
        self.tokens: dict[str, pulumi.Output[str]] = {}
        if cfg.mtls:
            prereqs += self._jwt(name, cfg.name, args.app_namespace, in_ns)
            issuer = self._cluster_ca(name, cfg.name)
            prereqs += self._certificates(
                name,
                cfg.name,
                issuer_name(cfg.name),
                pulumi.ResourceOptions(parent=self, depends_on=[ns, issuer]),
            )
        self._network_policies(name, cfg.name, args.client_namespaces, args.metrics_readers, in_ns)

        values = args.spec.apply(
            lambda spec: render_values(spec, cfg, args.prod, args.rds_ca_mount_path, web_secret)
        )
        self.values = values
        self.release = k8s.helm.v3.Release(
            f"{name}-temporal",
            name=cfg.name,
            chart="temporal",
            version=versions.TEMPORAL_HELM_CHART,
            namespace=ns_name,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=versions.TEMPORAL_HELM_REPO),
            values=values,
            atomic=True,
            cleanup_on_fail=True,
            wait_for_jobs=True,
            timeout=1800,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[ns, *prereqs, *args.depends_on]),
        )
        self.namespace_setup = k8s.batch.v1.Job(
            f"{name}-namespace-setup",
            metadata={"name": "namespace-setup", "namespace": ns_name},
            spec=args.spec.apply(lambda spec: namespace_job_spec(spec, cfg)),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.release]),
        )
        self.frontend_address = frontend_address(cfg.name)
        self.register_outputs(
            {"frontendAddress": self.frontend_address, "release": self.release.name}
        )

    def _jwt(
        self, name: str, cluster: str, app_namespace: str, opts: pulumi.ResourceOptions
    ) -> list[pulumi.Resource]:
        """The JWT signing key (a Secret; pulumi-tls makes it), its public JWKS for the
        frontend, and one token per role: worker (write in the app's namespace) for the client
        namespaces, admin (system admin) for the namespace-setup Job. Rotate by replacing the
        key: every token and the JWKS follow."""
        key = tls.PrivateKey(
            f"{name}-jwt-key",
            algorithm="RSA",
            rsa_bits=2048,
            opts=pulumi.ResourceOptions(parent=self),
        )
        pem = key.private_key_pem_pkcs8
        self.tokens = {
            "worker": pulumi.Output.secret(
                pem.apply(
                    lambda p: authz.mint(p, f"{cluster}-worker", authz.worker_role(app_namespace))
                )
            ),
            "admin": pulumi.Output.secret(
                pem.apply(lambda p: authz.mint(p, f"{cluster}-admin", authz.ADMIN_ROLE))
            ),
        }
        return [
            k8s.core.v1.Secret(
                f"{name}-jwt-signing-key",
                metadata={"name": f"{cluster}-jwt-signing-key", "namespace": cluster},
                type="Opaque",
                string_data={"key.pem": pem},
                opts=opts,
            ),
            k8s.core.v1.ConfigMap(
                f"{name}-jwks",
                metadata={"name": jwks_config_map(cluster), "namespace": cluster},
                data={"jwks.json": pem.apply(authz.jwks)},
                opts=opts,
            ),
            k8s.core.v1.Secret(
                f"{name}-admin-token",
                metadata={"name": admin_token_secret(cluster), "namespace": cluster},
                type="Opaque",
                string_data={"token": self.tokens["admin"]},
                opts=opts,
            ),
        ]

    def _cluster_ca(self, name: str, cluster: str) -> pulumi.Resource:
        """A per-cluster CA in cert-manager: it signs the server's and the clients' certificates."""
        child = pulumi.ResourceOptions(parent=self)
        root = k8s.apiextensions.CustomResource(
            f"{name}-selfsigned",
            api_version="cert-manager.io/v1",
            kind="ClusterIssuer",
            metadata={"name": f"{cluster}-selfsigned"},
            spec={"selfSigned": {}},
            opts=child,
        )
        ca = k8s.apiextensions.CustomResource(
            f"{name}-ca-cert",
            api_version="cert-manager.io/v1",
            kind="Certificate",
            metadata={"name": f"{cluster}-ca", "namespace": "cert-manager"},
            spec={
                "isCA": True,
                "commonName": f"{cluster} Temporal CA",
                "secretName": f"{cluster}-ca",
                "duration": "43800h",
                "privateKey": {"algorithm": "ECDSA", "size": 256},
                "issuerRef": {"name": f"{cluster}-selfsigned", "kind": "ClusterIssuer"},
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[root]),
        )
        return k8s.apiextensions.CustomResource(
            f"{name}-ca-issuer",
            api_version="cert-manager.io/v1",
            kind="ClusterIssuer",
            metadata={"name": issuer_name(cluster)},
            spec={"ca": {"secretName": f"{cluster}-ca"}},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[ca]),
        )

    def _certificates(
        self, name: str, cluster: str, issuer: str, opts: pulumi.ResourceOptions
    ) -> list:
        certs = []
        for role, usages in (
            ("internode", ["server auth", "client auth"]),
            ("frontend", ["server auth"]),
            ("admin-client", ["client auth"]),
        ):
            certs.append(
                k8s.apiextensions.CustomResource(
                    f"{name}-{role}-cert",
                    api_version="cert-manager.io/v1",
                    kind="Certificate",
                    metadata={"name": f"{cluster}-{role}-tls", "namespace": cluster},
                    spec={
                        "secretName": f"{cluster}-{role}-tls",
                        "dnsNames": [f"{cluster}-{role}"]
                        + (
                            []
                            if role == "admin-client"
                            else [f"{cluster}-frontend.{cluster}.svc.cluster.local"]
                        ),
                        "duration": "2160h",
                        "renewBefore": "360h",
                        "privateKey": {
                            "algorithm": "ECDSA",
                            "size": 256,
                            "rotationPolicy": "Always",
                        },
                        "usages": [*usages, "digital signature", "key encipherment"],
                        "issuerRef": {"name": issuer, "kind": "ClusterIssuer"},
                    },
                    opts=opts,
                )
            )
        return certs

    def _network_policies(
        self,
        name: str,
        cluster: str,
        clients: list[str],
        metrics_readers: list[str],
        opts: pulumi.ResourceOptions,
    ) -> None:
        def from_namespaces(names: list[str]) -> list[dict]:
            return [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": n}}}
                for n in names
            ]

        k8s.networking.v1.NetworkPolicy(
            f"{name}-same-namespace",
            metadata={"name": "temporal-internal", "namespace": cluster},
            spec={
                "podSelector": {},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {"from": [{"podSelector": {}}]},
                    {
                        "from": from_namespaces(["monitoring"]),
                        "ports": [{"protocol": "TCP", "port": METRICS_PORT}],
                    },
                ],
            },
            opts=opts,
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-frontend-clients",
            metadata={"name": "temporal-frontend-clients", "namespace": cluster},
            spec={
                "podSelector": {"matchLabels": {"app.kubernetes.io/component": "frontend"}},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": from_namespaces(clients),
                        "ports": [{"protocol": "TCP", "port": p} for p in FRONTEND_PORTS],
                    },
                    *(
                        [
                            {
                                "from": from_namespaces(metrics_readers),
                                "ports": [{"protocol": "TCP", "port": METRICS_PORT}],
                            }
                        ]
                        if metrics_readers
                        else []
                    ),
                ],
            },
            opts=opts,
        )

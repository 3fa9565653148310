"""Workers: one generic Deployment per worker group and cluster, from the one haul image.

Each group serves a set of task queues. The Temporal connection is a mounted `temporal.toml`
with one envconfig profile per cluster (two during a migration), each with its own cluster's
worker-role token as `api_key` (so it lives in a Secret); each Deployment runs
`haul worker` on its cluster's profile (TEMPORAL_PROFILE) and scales on that cluster's backlog.
During a migration every pod mounts both clusters' client certificates and follows the phase in
the app database (HAUL_MIGRATION): it polls both clusters from `dual` on, and the phase, not
the Deployment, decides which cluster takes new work. Pods run under an IRSA role that may only
touch the claim-check bucket. Scaling is on task-queue backlog through KEDA's Temporal scaler,
with a CPU HPA when KEDA is off.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Literal

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
from config import WorkerGroup
from pydantic import BaseModel, ConfigDict, SkipValidation

from app.core import envconfig
from components.cluster import irsa_trust_policy

HEALTH_PORT = 9090
CONFIG_DIR = "/etc/haul"
TOML_PATH = f"{CONFIG_DIR}/temporal.toml"
# The Secret holding the client pods' temporal.toml (profiles carry tokens).
CLIENT_CONFIG = "temporal-client"
TLS_DIR = f"{CONFIG_DIR}/tls"
RDS_CA_PATH = f"{CONFIG_DIR}/rds-ca/global-bundle.pem"
RDS_CA_VOLUME = {"name": "rds-ca", "configMap": {"name": "rds-ca-bundle"}}
RDS_CA_MOUNT = {"name": "rds-ca", "mountPath": f"{CONFIG_DIR}/rds-ca", "readOnly": True}
DATABASE_URL_ENV = {
    "name": "HAUL_DATABASE_URL",
    "valueFrom": {"secretKeyRef": {"name": "haul-database", "key": "url"}},
}
# The migrate Job's URL: the role that owns the app's tables (never the app pods').
MIGRATE_URL_ENV = {
    "name": "HAUL_DATABASE_URL",
    "valueFrom": {"secretKeyRef": {"name": "haul-database-migrate", "key": "url"}},
}
# Seconds a pod gets beyond the longest activity's grace before SIGKILL.
SHUTDOWN_MARGIN_SECONDS = 30
# Every haul pod: the image's non-root user, no privilege, a read-only root filesystem.
POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "fsGroup": 10001,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}
TMP_DIR = "/tmp"


def secret_env(env: str, secret: str, key: str) -> dict[str, Any]:
    """An environment variable read from one key of a Secret."""
    return {"name": env, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def scratch_volume(name: str, path: str, size: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A sized emptyDir at `path`: with a read-only root filesystem, the only place a pod can
    write (the S3 blob store spools each upload to a temporary file there)."""
    return (
        {"name": name, "emptyDir": {"sizeLimit": size}},
        {"name": name, "mountPath": path},
    )


class TemporalProfile(BaseModel):
    """One envconfig profile: how a worker reaches one Temporal cluster."""

    model_config = ConfigDict(frozen=True)

    cluster: str
    address: str
    namespace: str
    # With mTLS: the frontend's TLS name and the client certificate mounted from cert-manager.
    mtls: bool = False
    server_name: str = ""
    # The Secret holding the client certificate (default: cert-manager's `<cluster>-client-tls`)
    # and whether it carries the server's CA (not for a publicly trusted Temporal Cloud).
    secret: str = ""
    server_ca: bool = True

    @property
    def secret_name(self) -> str:
        return self.secret or f"{self.cluster}-client-tls"


def tls_paths(profile: TemporalProfile) -> dict[str, str]:
    base = f"{TLS_DIR}/{profile.cluster}"
    paths = {"client_cert_path": f"{base}/tls.crt", "client_key_path": f"{base}/tls.key"}
    if profile.server_ca:
        paths["server_ca_cert_path"] = f"{base}/ca.crt"
    return paths


def render_temporal_toml(
    profiles: list[TemporalProfile], tokens: Mapping[str, str] | None = None
) -> str:
    """temporal.toml in the envconfig format the SDK and the `temporal` CLI read; a profile
    whose cluster has a token (an authorizing mTLS frontend) carries it as its `api_key`."""
    tokens = tokens or {}
    return envconfig.render(
        envconfig.Profile(
            name=p.cluster,
            address=p.address,
            namespace=p.namespace,
            api_key=tokens.get(p.cluster, ""),
            tls=envconfig.ProfileTLS(server_name=p.server_name, **tls_paths(p))
            if p.mtls
            else envconfig.ProfileTLS(disabled=True),
        )
        for p in profiles
    )


def temporal_client_config(
    name: str,
    namespace: str,
    profiles: list[TemporalProfile],
    tokens: Mapping[str, Any],
    opts: pulumi.ResourceOptions,
) -> tuple[k8s.core.v1.Secret, pulumi.Output[str]]:
    """The client pods' temporal.toml, in the `temporal-client` Secret: (Secret, its text).

    Each profile carries its own cluster's token. One TEMPORAL_API_KEY covers only the profile
    a process starts from, and during a migration (HAUL_MIGRATION) no TEMPORAL_* variable
    overrides a profile at all, so a pod that reaches both clusters needs both tokens here.
    """
    clusters = sorted(tokens)
    text = pulumi.Output.all(*(tokens[c] for c in clusters)).apply(
        lambda values: render_temporal_toml(profiles, dict(zip(clusters, values, strict=True)))
    )
    secret = k8s.core.v1.Secret(
        f"{name}-temporal-toml",
        metadata={"name": CLIENT_CONFIG, "namespace": namespace},
        type="Opaque",
        string_data={"temporal.toml": text},
        opts=opts,
    )
    return secret, text


def client_volumes(
    profiles: list[TemporalProfile],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Volumes and mounts of a Temporal client pod: the `temporal-client` Secret (one
    temporal.toml) and, per mTLS cluster, the client certificate its profile points at."""
    volumes: list[dict[str, Any]] = [
        {"name": "temporal-client", "secret": {"secretName": CLIENT_CONFIG, "defaultMode": 0o440}}
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "temporal-client", "mountPath": CONFIG_DIR + "/client", "readOnly": True}
    ]
    for p in profiles:
        if p.mtls:
            volume = f"client-tls-{p.cluster}"
            volumes.append({"name": volume, "secret": {"secretName": p.secret_name}})
            mounts.append({"name": volume, "mountPath": f"{TLS_DIR}/{p.cluster}", "readOnly": True})
    return volumes, mounts


def migration_env(profiles: list[TemporalProfile]) -> list[dict[str, str]]:
    """With two clusters, follow the migration phase in the app database (HAUL_MIGRATION):
    the phase, not the Deployment, decides where new work goes and which clusters are polled."""
    return [{"name": "HAUL_MIGRATION", "value": "true"}] if len(profiles) > 1 else []


def client_token_secret(cluster: str) -> str:
    """The worker role's token for `cluster`, in each client namespace (workers, loadgen)."""
    return f"{cluster}-temporal-token"


def token_secrets(
    name: str, namespace: str, tokens: dict[str, Any], opts: Any
) -> list[k8s.core.v1.Secret]:
    """One Secret per mTLS cluster with the worker role's JWT, for KEDA's TriggerAuthentication
    (`apiKey`) in the workers' namespace."""
    return [
        k8s.core.v1.Secret(
            f"{name}-{cluster}-token",
            metadata={"name": client_token_secret(cluster), "namespace": namespace},
            type="Opaque",
            string_data={"token": token},
            opts=opts,
        )
        for cluster, token in tokens.items()
    ]


def client_certificate(
    name: str, cluster: str, issuer: str, namespace: str, common_name: str, opts: Any
) -> k8s.apiextensions.CustomResource:
    """cert-manager Certificate for a Temporal client in namespace, from the cluster's CA."""
    return k8s.apiextensions.CustomResource(
        name,
        api_version="cert-manager.io/v1",
        kind="Certificate",
        metadata={"name": f"{cluster}-client", "namespace": namespace},
        spec={
            "secretName": f"{cluster}-client-tls",
            "commonName": common_name,
            "duration": "2160h",
            "renewBefore": "360h",
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
            "usages": ["client auth", "digital signature", "key encipherment"],
            "issuerRef": {"name": issuer, "kind": "ClusterIssuer"},
        },
        opts=opts,
    )


def app_database(
    name: str, namespace: str, database_url: Any, rds_ca_pem: str, opts: pulumi.ResourceOptions
) -> list[pulumi.Resource]:
    """The app database's URL (a Secret, read through DATABASE_URL_ENV) and the RDS CA bundle
    the URL's sslrootcert points at (mounted with RDS_CA_VOLUME and RDS_CA_MOUNT)."""
    return [
        k8s.core.v1.Secret(
            f"{name}-database",
            metadata={"name": "haul-database", "namespace": namespace},
            type="Opaque",
            string_data={"url": database_url},
            opts=opts,
        ),
        k8s.core.v1.ConfigMap(
            f"{name}-rds-ca",
            metadata={"name": "rds-ca-bundle", "namespace": namespace},
            data={RDS_CA_PATH.rsplit("/", 1)[1]: rds_ca_pem},
            opts=opts,
        ),
    ]


def claim_check_account(
    name: str,
    namespace: str,
    account: str,
    role_label: str,
    *,
    oidc_provider_arn: Any,
    oidc_issuer_url: Any,
    bucket_policy_arn: Any,
    tags: dict[str, str],
    parent: pulumi.Resource,
    depends_on: list[pulumi.Resource],
) -> aws.iam.Role:
    """A service account whose pods get an IRSA role that may only use the claim-check bucket."""
    role = aws.iam.Role(
        f"{name}-irsa",
        assume_role_policy=irsa_trust_policy(
            oidc_provider_arn, oidc_issuer_url, namespace, account
        ),
        tags=tags,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    aws.iam.RolePolicyAttachment(
        f"{name}-claim-check",
        role=role.name,
        policy_arn=bucket_policy_arn,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    k8s.core.v1.ServiceAccount(
        f"{name}-sa",
        metadata={
            "name": account,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/part-of": "haul", "haul.dev/role": role_label},
            "annotations": {"eks.amazonaws.com/role-arn": role.arn},
        },
        automount_service_account_token=True,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=depends_on),
    )
    return role


def pod_disruption_budget(
    name: str, app: str, namespace: str, labels: dict[str, str], opts: pulumi.ResourceOptions
) -> k8s.policy.v1.PodDisruptionBudget:
    """At most one of app's pods down at a time in a voluntary disruption (a node drain)."""
    return k8s.policy.v1.PodDisruptionBudget(
        name,
        metadata={"name": app, "namespace": namespace, "labels": labels},
        spec={"maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": app}}},
        opts=opts,
    )


def toml_checksum(toml: Any) -> dict[str, Any]:
    """Pod annotation that rolls the pods when their temporal.toml changes. The digest
    reveals no token, so it is not kept secret (the pod template stays readable in diffs)."""
    digest = pulumi.Output.from_input(toml).apply(
        lambda text: hashlib.sha256(text.encode()).hexdigest()
    )
    return {"haul.dev/temporal-toml-sha256": pulumi.Output.unsecret(digest)}


class WorkersArgs(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    role: Literal["worker"] = "worker"
    namespace: str
    groups: SkipValidation[list[WorkerGroup]]
    image: Any
    profiles: list[TemporalProfile]
    bucket: Any
    bucket_policy_arn: Any
    # postgresql:// URLs of the app database (secret Outputs): the app role's, and the
    # migration owner's for the migrate Job; and the RDS CA bundle they use.
    database_url: Any
    migrate_database_url: Any
    rds_ca_pem: str
    oidc_provider_arn: Any
    oidc_issuer_url: Any
    keda: bool
    # cert-manager issuer per mTLS cluster, for the workers' client certificates.
    client_issuers: dict[str, str] = {}
    # The worker role's JWT per mTLS cluster (Output, secret): each profile's api_key.
    client_tokens: dict[str, Any] = {}
    tags: dict[str, str]


class Workers(pulumi.ComponentResource):
    def __init__(self, name: str, args: WorkersArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("haul:workers:Workers", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        ns = args.namespace
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-ns",
            metadata={"name": ns, "labels": {"haul.dev/role": args.role}},
            opts=child,
        )
        after_ns = pulumi.ResourceOptions(parent=self, depends_on=[self.namespace])
        config_map, self.temporal_toml = temporal_client_config(
            name, ns, args.profiles, args.client_tokens, after_ns
        )
        database = app_database(name, ns, args.database_url, args.rds_ca_pem, after_ns)
        migrate_url = k8s.core.v1.Secret(
            f"{name}-database-migrate",
            metadata={"name": "haul-database-migrate", "namespace": ns},
            type="Opaque",
            string_data={"url": args.migrate_database_url},
            opts=after_ns,
        )
        self.migrate = self._migrate_job(name, args, [*database, migrate_url])
        certs: list[pulumi.Resource] = [*database, self.migrate]
        certs += token_secrets(name, ns, args.client_tokens, after_ns)
        for cluster, issuer in args.client_issuers.items():
            certs.append(
                client_certificate(
                    f"{name}-{cluster}-client-cert",
                    cluster,
                    issuer,
                    ns,
                    f"{args.role}.{ns}",
                    after_ns,
                )
            )
        self.roles: dict[str, aws.iam.Role] = {}
        self.deployments: dict[str, k8s.apps.v1.Deployment] = {}
        for group in args.groups:
            self._group(name, group, args, config_map, certs)
        self.register_outputs({"namespace": ns, "deployments": list(self.deployments)})

    def _migrate_job(self, name: str, args: WorkersArgs, needs: list) -> k8s.batch.v1.Job:
        """`migrate` (haul db migrate) on the app database, before any app pod starts.

        Jobs are immutable, so a new image replaces the Job and the migrations run again; each
        is applied once, so a rerun is harmless.
        """
        return k8s.batch.v1.Job(
            f"{name}-db-migrate",
            metadata={"name": "haul-db-migrate", "namespace": args.namespace},
            spec={
                "backoffLimit": 6,
                "activeDeadlineSeconds": 1800,
                "template": {
                    "metadata": {"labels": {"app.kubernetes.io/name": "haul-db-migrate"}},
                    "spec": {
                        "restartPolicy": "OnFailure",
                        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
                        "containers": [
                            {
                                "name": "migrate",
                                "image": args.image,
                                "args": ["migrate"],
                                "env": [MIGRATE_URL_ENV],
                                "volumeMounts": [RDS_CA_MOUNT],
                                "resources": {
                                    "requests": {"cpu": "100m", "memory": "128Mi"},
                                    "limits": {"cpu": "500m", "memory": "256Mi"},
                                },
                                "securityContext": CONTAINER_SECURITY,
                            }
                        ],
                        "volumes": [RDS_CA_VOLUME],
                    },
                },
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.namespace, *needs]),
        )

    def _group(
        self, name: str, group: WorkerGroup, args: WorkersArgs, config_map: Any, certs: list
    ) -> None:
        """One IRSA role and service account per group, one Deployment per (group, cluster)."""
        account = f"{args.role}-{group.name}"
        self.roles[group.name] = claim_check_account(
            f"{name}-{group.name}",
            args.namespace,
            account,
            args.role,
            oidc_provider_arn=args.oidc_provider_arn,
            oidc_issuer_url=args.oidc_issuer_url,
            bucket_policy_arn=args.bucket_policy_arn,
            tags=args.tags,
            parent=self,
            depends_on=[self.namespace],
        )
        for profile in args.profiles:
            self._deployment(name, group, profile, args, account, [config_map, *certs])

    def _deployment(
        self,
        name: str,
        group: WorkerGroup,
        profile: TemporalProfile,
        args: WorkersArgs,
        account: str,
        needs: list,
    ) -> None:
        """The group's workers for one cluster. During a migration each cluster has its own
        Deployment, scaled on its own backlog, so the old one drains while the new one grows."""
        ns = args.namespace
        key = f"{group.name}-{profile.cluster}"
        app = f"{args.role}-{key}"
        labels = {
            "app.kubernetes.io/name": app,
            "app.kubernetes.io/part-of": "haul",
            "haul.dev/role": args.role,
            "haul.dev/worker-group": group.name,
            "haul.dev/temporal-cluster": profile.cluster,
        }
        deps = pulumi.ResourceOptions(parent=self, depends_on=[self.namespace])
        # Every pod can reach every cluster (both profiles, both client certificates): from
        # `dual` on a worker polls both, whichever cluster its Deployment is named after.
        volumes, mounts = client_volumes(args.profiles)
        volumes.append(RDS_CA_VOLUME)
        mounts.append(RDS_CA_MOUNT)
        tmp_volume, tmp_mount = scratch_volume("tmp", TMP_DIR, group.scratch_size)
        volumes.append(tmp_volume)
        mounts.append(tmp_mount)
        probe = {"httpGet": {"path": "/healthz", "port": "health"}, "periodSeconds": 10}
        container = {
            "name": args.role,
            "image": args.image,
            "args": [args.role],
            "ports": [{"name": "health", "containerPort": HEALTH_PORT}],
            "env": [
                {"name": "TEMPORAL_CONFIG_FILE", "value": f"{CONFIG_DIR}/client/temporal.toml"},
                {"name": "TEMPORAL_PROFILE", "value": profile.cluster},
                {"name": "TEMPORAL_NAMESPACE", "value": group.namespace},
                *migration_env(args.profiles),
                {"name": "HAUL_TASK_QUEUES", "value": ",".join(group.task_queues)},
                {
                    "name": "HAUL_BLOB_DIR",
                    "value": pulumi.Output.concat("s3://", args.bucket, "/claim-check"),
                },
                DATABASE_URL_ENV,
                {"name": "HAUL_WORKER_HEALTH_PORT", "value": str(HEALTH_PORT)},
                # Probes and scrapes come from the node and Prometheus, not from loopback.
                {"name": "HAUL_WORKER_HEALTH_HOST", "value": "0.0.0.0"},
                {
                    "name": "HAUL_MAX_CONCURRENT_ACTIVITIES",
                    "value": str(group.max_concurrent_activities),
                },
                {
                    "name": "HAUL_GRACEFUL_SHUTDOWN_SECONDS",
                    "value": str(group.max_activity_grace_seconds),
                },
            ],
            "resources": group.resources.k8s(),
            "livenessProbe": {**probe, "initialDelaySeconds": 20, "failureThreshold": 3},
            "readinessProbe": {**probe, "initialDelaySeconds": 5, "failureThreshold": 2},
            "volumeMounts": mounts,
            "securityContext": CONTAINER_SECURITY,
        }
        self.deployments[key] = k8s.apps.v1.Deployment(
            f"{name}-{key}",
            metadata={"name": app, "namespace": ns, "labels": labels},
            spec={
                "replicas": group.min_replicas,
                "selector": {"matchLabels": {"app.kubernetes.io/name": app}},
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"},
                },
                "template": {
                    "metadata": {
                        "labels": labels,
                        "annotations": toml_checksum(self.temporal_toml),
                    },
                    "spec": {
                        "serviceAccountName": account,
                        "terminationGracePeriodSeconds": group.max_activity_grace_seconds
                        + SHUTDOWN_MARGIN_SECONDS,
                        "securityContext": POD_SECURITY,
                        "nodeSelector": {"haul.dev/node-group": "workers"},
                        "topologySpreadConstraints": [
                            {
                                "maxSkew": 1,
                                "topologyKey": "topology.kubernetes.io/zone",
                                "whenUnsatisfiable": "ScheduleAnyway",
                                "labelSelector": {"matchLabels": {"app.kubernetes.io/name": app}},
                            }
                        ],
                        "containers": [container],
                        "volumes": volumes,
                    },
                },
            },
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[self.namespace, *needs],
                ignore_changes=["spec.replicas"],
            ),
        )
        k8s.core.v1.Service(
            f"{name}-{key}-metrics",
            metadata={"name": app, "namespace": ns, "labels": labels},
            spec={
                "selector": {"app.kubernetes.io/name": app},
                "ports": [{"name": "metrics", "port": HEALTH_PORT, "targetPort": "health"}],
            },
            opts=deps,
        )
        pod_disruption_budget(f"{name}-{key}-pdb", app, ns, labels, deps)
        if args.keda:
            self._scaled_object(name, key, app, group, profile, args)
        else:
            k8s.autoscaling.v2.HorizontalPodAutoscaler(
                f"{name}-{key}-hpa",
                metadata={"name": app, "namespace": ns, "labels": labels},
                spec={
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": app},
                    "minReplicas": group.min_replicas,
                    "maxReplicas": group.max_replicas,
                    "metrics": [
                        {
                            "type": "Resource",
                            "resource": {
                                "name": "cpu",
                                "target": {"type": "Utilization", "averageUtilization": 70},
                            },
                        }
                    ],
                },
                opts=deps,
            )

    def _scaled_object(
        self,
        name: str,
        key: str,
        app: str,
        group: WorkerGroup,
        profile: TemporalProfile,
        args: WorkersArgs,
    ) -> None:
        """KEDA's Temporal scaler on this cluster's backlog of the group's task queues."""
        ns = args.namespace
        deps = pulumi.ResourceOptions(
            parent=self, depends_on=[self.namespace, self.deployments[key]]
        )
        auth = None
        if profile.mtls:
            k8s.apiextensions.CustomResource(
                f"{name}-{key}-auth",
                api_version="keda.sh/v1alpha1",
                kind="TriggerAuthentication",
                metadata={"name": app, "namespace": ns},
                spec={
                    "secretTargetRef": [
                        {"parameter": param, "name": profile.secret_name, "key": k}
                        for param, k in (("cert", "tls.crt"), ("key", "tls.key"), ("ca", "ca.crt"))
                        if param != "ca" or profile.server_ca
                    ]
                    + (
                        [
                            {
                                "parameter": "apiKey",
                                "name": client_token_secret(profile.cluster),
                                "key": "token",
                            }
                        ]
                        if profile.cluster in args.client_tokens
                        else []
                    )
                },
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.namespace]),
            )
            auth = {"name": app}
        triggers = []
        for queue in group.task_queues:
            metadata = {
                "endpoint": profile.address,
                "namespace": group.namespace,
                "taskQueue": queue,
                "queueTypes": "workflow,activity",
                "targetQueueSize": str(group.backlog_per_replica),
                "activationTargetQueueSize": "0",
            }
            if profile.mtls and profile.server_name:
                metadata["tlsServerName"] = profile.server_name
            trigger: dict[str, Any] = {"type": "temporal", "name": queue, "metadata": metadata}
            if auth:
                trigger["authenticationRef"] = auth
            triggers.append(trigger)
        k8s.apiextensions.CustomResource(
            f"{name}-{key}-scaler",
            api_version="keda.sh/v1alpha1",
            kind="ScaledObject",
            metadata={"name": app, "namespace": ns},
            spec={
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": app},
                "minReplicaCount": group.min_replicas,
                "maxReplicaCount": group.max_replicas,
                "pollingInterval": 15,
                "cooldownPeriod": 300,
                "triggers": triggers,
            },
            opts=deps,
        )

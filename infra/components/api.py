"""FailureApi: `haul api`, the failure inbox, as a Deployment behind a ClusterIP Service.

It runs in the workers' namespace, so it reuses what is already there: the app database's
Secret and RDS CA bundle, the `temporal-client` temporal.toml, and the clusters' client
certificates. During a migration it gets both clusters' profiles and follows the migration
state (HAUL_MIGRATION): its pollers read both clusters and its redrives go through the router.

Changes need a bearer token. It is generated here (pulumi-random), kept in a Secret, and
mounted as a file the process reads through HAUL_API_TOKEN_FILE, so it is never in the pod's
environment; read it with `pulumi stack output apiToken --show-secrets`. The pods take
traffic only on their HTTP port, from their own namespace and the namespaces the stack lists.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
from config import ApiConfig
from pydantic import BaseModel, ConfigDict, SkipValidation

from components.workers import (
    CONFIG_DIR,
    CONTAINER_SECURITY,
    DATABASE_URL_ENV,
    POD_SECURITY,
    RDS_CA_MOUNT,
    RDS_CA_VOLUME,
    TMP_DIR,
    TemporalProfile,
    client_volumes,
    pod_disruption_budget,
    scratch_volume,
    toml_checksum,
)

APP = "haul-api"
# The port `haul api --host 0.0.0.0 --port 8080` listens on (the image's `api` entrypoint).
HTTP_PORT = 8080
SERVICE_PORT = 80
TOKEN_SECRET = "haul-api-token"
TOKEN_DIR = f"{CONFIG_DIR}/api-token"
TOKEN_FILE = f"{TOKEN_DIR}/token"


class FailureApiArgs(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    config: SkipValidation[ApiConfig]
    # The workers' namespace, where the database Secret, CA bundle and client certs live.
    namespace: str
    image: Any
    # One envconfig profile per apps cluster; with two, the migration phase decides which
    # takes new work (HAUL_MIGRATION).
    profiles: list[TemporalProfile]
    # The Temporal namespace the app runs in.
    temporal_namespace: str
    # The workers' temporal.toml (Output), whose checksum rolls the api pods with theirs.
    temporal_toml: Any


class FailureApi(pulumi.ComponentResource):
    def __init__(self, name: str, args: FailureApiArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("haul:api:FailureApi", name, None, opts)
        cfg = args.config
        ns = args.namespace
        child = pulumi.ResourceOptions(parent=self)
        labels = {
            "app.kubernetes.io/name": APP,
            "app.kubernetes.io/part-of": "haul",
            "haul.dev/role": "api",
        }
        self.token = random.RandomPassword(f"{name}-token", length=48, special=False, opts=child)
        secret = k8s.core.v1.Secret(
            f"{name}-token",
            metadata={"name": TOKEN_SECRET, "namespace": ns, "labels": labels},
            type="Opaque",
            string_data={"token": self.token.result},
            opts=child,
        )
        account = k8s.core.v1.ServiceAccount(
            f"{name}-sa",
            metadata={"name": APP, "namespace": ns, "labels": labels},
            # It calls Temporal and Postgres, never the Kubernetes API.
            automount_service_account_token=False,
            opts=child,
        )
        self.deployment = k8s.apps.v1.Deployment(
            name,
            metadata={"name": APP, "namespace": ns, "labels": labels},
            spec={
                "replicas": cfg.replicas,
                "selector": {"matchLabels": {"app.kubernetes.io/name": APP}},
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
                },
                "template": {
                    "metadata": {
                        "labels": labels,
                        "annotations": toml_checksum(args.temporal_toml),
                    },
                    "spec": self._pod(args),
                },
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[secret, account]),
        )
        self.service = k8s.core.v1.Service(
            f"{name}-svc",
            metadata={"name": APP, "namespace": ns, "labels": labels},
            spec={
                "type": "ClusterIP",
                "selector": {"app.kubernetes.io/name": APP},
                "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http"}],
            },
            opts=child,
        )
        pod_disruption_budget(f"{name}-pdb", APP, ns, labels, child)
        callers: list[dict[str, Any]] = [{"podSelector": {}}]
        callers += [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": n}}}
            for n in cfg.client_namespaces
        ]
        k8s.networking.v1.NetworkPolicy(
            f"{name}-ingress",
            metadata={"name": APP, "namespace": ns, "labels": labels},
            spec={
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": APP}},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": callers, "ports": [{"protocol": "TCP", "port": HTTP_PORT}]}],
            },
            opts=child,
        )
        self.url = f"http://{APP}.{ns}.svc.cluster.local"
        self.register_outputs({"url": self.url, "token": self.token.result})

    def _pod(self, args: FailureApiArgs) -> dict[str, Any]:
        cfg = args.config
        volumes, mounts = client_volumes(args.profiles)
        volumes.append(RDS_CA_VOLUME)
        mounts.append(RDS_CA_MOUNT)
        volumes.append(
            {
                "name": "api-token",
                "secret": {
                    "secretName": TOKEN_SECRET,
                    "items": [{"key": "token", "path": "token"}],
                    "defaultMode": 0o440,
                },
            }
        )
        mounts.append({"name": "api-token", "mountPath": TOKEN_DIR, "readOnly": True})
        tmp_volume, tmp_mount = scratch_volume("tmp", TMP_DIR, "256Mi")
        volumes.append(tmp_volume)
        mounts.append(tmp_mount)
        migration = len(args.profiles) > 1
        env: list[dict[str, Any]] = [
            {"name": "TEMPORAL_CONFIG_FILE", "value": f"{CONFIG_DIR}/client/temporal.toml"},
            # The profile it starts from; during a migration the other comes from the state.
            {"name": "TEMPORAL_PROFILE", "value": args.profiles[0].cluster},
            {"name": "TEMPORAL_NAMESPACE", "value": args.temporal_namespace},
            {"name": "HAUL_MIGRATION", "value": "true" if migration else "false"},
            DATABASE_URL_ENV,
            {"name": "HAUL_API_TOKEN_FILE", "value": TOKEN_FILE},
            {"name": "HAUL_API_PORT", "value": str(HTTP_PORT)},
            {"name": "HAUL_API_READ_AUTH", "value": "true" if cfg.read_auth else "false"},
        ]
        if cfg.temporal_ui_url:
            env.append({"name": "HAUL_TEMPORAL_UI_URL", "value": cfg.temporal_ui_url})
        probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10}
        return {
            "serviceAccountName": APP,
            "automountServiceAccountToken": False,
            "securityContext": POD_SECURITY,
            "nodeSelector": {"haul.dev/node-group": "workers"},
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": "topology.kubernetes.io/zone",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": {"app.kubernetes.io/name": APP}},
                }
            ],
            "containers": [
                {
                    "name": "api",
                    "image": args.image,
                    "args": ["api"],
                    "ports": [{"name": "http", "containerPort": HTTP_PORT}],
                    "env": env,
                    "resources": cfg.resources.k8s(),
                    "readinessProbe": {**probe, "initialDelaySeconds": 5, "failureThreshold": 2},
                    "livenessProbe": {**probe, "initialDelaySeconds": 20, "failureThreshold": 3},
                    "volumeMounts": mounts,
                    "securityContext": CONTAINER_SECURITY,
                }
            ],
            "volumes": volumes,
        }

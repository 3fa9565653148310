"""LoadGenerator: Locust on EKS, close to the cluster it measures.

One master pod is the load-test console: `haul loadtest run --expect-workers N` runs in it
(through `kubectl exec`), with its target, the frontends' metrics (every pod, through the
chart's headless Service) and its bind address already in the environment. N worker pods
run `haul loadtest locust-worker`, which joins each run's master through the
`haul-loadgen-master` Service and takes the run's target and settings from it. Reports are
written in the master pod (an emptyDir) and copied out with `kubectl cp`.

The pods use the haul image and the same mounted temporal.toml as the workers, one profile
per apps cluster, so a load test can go to either cluster of a migration. The worker pods also
get what parcel_ingest users need, as the haul workers do: the app database URL (a Secret, with
the RDS CA bundle) and an IRSA role of their own that may put and read claim-check payloads
but never delete one. The master holds
no credentials. Only the master's Locust port is open, and only to the load generator's pods.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from config import LoadGeneratorConfig
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
    app_database,
    claim_check_account,
    client_certificate,
    client_volumes,
    pod_disruption_budget,
    scratch_volume,
    temporal_client_config,
    toml_checksum,
)

LOCUST_PORT = 5557
MASTER = "haul-loadgen-master"
WORKER = "haul-loadgen-worker"
HOME = "/home/haul"
REPORTS_DIR = f"{HOME}/loadtest-reports"


class LoadGeneratorArgs(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    config: SkipValidation[LoadGeneratorConfig]
    image: Any
    # One envconfig profile per apps cluster; the first is the default target.
    profiles: list[TemporalProfile]
    # The default target's frontend /metrics (a dns+http:// URL that reaches every pod).
    metrics_url: str
    # cert-manager issuer per mTLS cluster, for the load generator's client certificates.
    client_issuers: dict[str, str] = {}
    # The worker role's JWT per mTLS cluster (Output, secret), as the workers get it.
    client_tokens: dict[str, Any] = {}
    # The node group's taints, tolerated (a dedicated, tainted group keeps load off workers).
    tolerations: list[dict[str, str]] = []
    # parcel_ingest: the app database (a secret Output URL and its CA bundle) and the
    # claim-check bucket, reached through an IRSA role with the load tests' own policy.
    database_url: Any
    rds_ca_pem: str
    bucket: Any
    bucket_policy_arn: Any
    oidc_provider_arn: Any
    oidc_issuer_url: Any
    tags: dict[str, str]


def _labels(app: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": app,
        "app.kubernetes.io/part-of": "haul",
        "haul.dev/role": "loadgen",
    }


class LoadGenerator(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: LoadGeneratorArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("haul:loadgen:LoadGenerator", name, None, opts)
        cfg = args.config
        ns = cfg.namespace
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-ns",
            metadata={"name": ns, "labels": {"haul.dev/role": "loadgen"}},
            opts=pulumi.ResourceOptions(parent=self),
        )
        in_ns = pulumi.ResourceOptions(parent=self, depends_on=[self.namespace])
        # Load-test users call the target cluster as the worker role does (its profile's
        # api_key).
        client_config, self.temporal_toml = temporal_client_config(
            name, ns, args.profiles, args.client_tokens, in_ns
        )
        needs: list[pulumi.Resource] = [client_config]
        for cluster, issuer in args.client_issuers.items():
            needs.append(
                client_certificate(
                    f"{name}-{cluster}-client-cert", cluster, issuer, ns, f"loadgen.{ns}", in_ns
                )
            )
        k8s.core.v1.ServiceAccount(
            f"{name}-master-sa",
            metadata={"name": MASTER, "namespace": ns, "labels": _labels(MASTER)},
            # The console talks to Temporal and the workers, never to the Kubernetes API.
            automount_service_account_token=False,
            opts=in_ns,
        )
        database = app_database(name, ns, args.database_url, args.rds_ca_pem, in_ns)
        self.worker_role = claim_check_account(
            f"{name}-worker",
            ns,
            WORKER,
            "loadgen",
            oidc_provider_arn=args.oidc_provider_arn,
            oidc_issuer_url=args.oidc_issuer_url,
            bucket_policy_arn=args.bucket_policy_arn,
            tags=args.tags,
            parent=self,
            depends_on=[self.namespace],
        )
        target = args.profiles[0]
        self.master = self._deployment(
            name,
            args,
            "master",
            replicas=1,
            # The console idles; each run is a `haul loadtest run` started in it.
            command=["sleep", "infinity"],
            env={
                "HAUL_LT_TARGET": target.cluster,
                "HAUL_LT_METRICS_URL": args.metrics_url,
                "HAUL_LT_MASTER_BIND_HOST": "0.0.0.0",
            },
            resources=cfg.master.k8s(),
            writable={"reports": REPORTS_DIR},
            needs=needs,
        )
        self.workers = self._deployment(
            name,
            args,
            "worker",
            replicas=cfg.workers,
            command=["haul", "loadtest", "locust-worker"],
            env={
                "HAUL_LT_MASTER_HOST": MASTER,
                "HAUL_LT_MASTER_PORT": str(LOCUST_PORT),
                "HAUL_BLOB_DIR": pulumi.Output.concat("s3://", args.bucket, "/claim-check"),
            },
            resources=cfg.worker.k8s(),
            writable={},
            needs=[*needs, *database],
            app_access=True,
        )
        k8s.core.v1.Service(
            f"{name}-master",
            metadata={"name": MASTER, "namespace": ns, "labels": _labels(MASTER)},
            spec={
                "selector": {"app.kubernetes.io/name": MASTER},
                "ports": [{"name": "locust", "port": LOCUST_PORT, "targetPort": "locust"}],
            },
            opts=in_ns,
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-ingress",
            metadata={"name": "haul-loadgen", "namespace": ns},
            spec={
                "podSelector": {},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [{"podSelector": {"matchLabels": {"haul.dev/role": "loadgen"}}}],
                        "ports": [{"protocol": "TCP", "port": LOCUST_PORT}],
                    }
                ],
            },
            opts=in_ns,
        )
        self.register_outputs(
            {"namespace": ns, "master": MASTER, "workers": cfg.workers, "target": target.cluster}
        )

    def _deployment(
        self,
        name: str,
        args: LoadGeneratorArgs,
        role: str,
        *,
        replicas: int,
        command: list[str],
        env: dict[str, Any],
        resources: dict[str, Any],
        writable: dict[str, str],
        needs: list[pulumi.Resource],
        app_access: bool = False,
    ) -> k8s.apps.v1.Deployment:
        """One role's Deployment (service account: its own name) and its PodDisruptionBudget.
        The root filesystem is read-only: /tmp and the given paths are emptyDirs. With
        app_access, the pods get the app database and the claim-check role."""
        ns = args.config.namespace
        app = f"haul-loadgen-{role}"
        labels = _labels(app)
        volumes, mounts = client_volumes(args.profiles)
        for volume, path in {"tmp": TMP_DIR, **writable}.items():
            scratch, mount = scratch_volume(volume, path, args.config.scratch_size)
            volumes.append(scratch)
            mounts.append(mount)
        secrets: list[dict[str, Any]] = []
        if app_access:
            volumes.append(RDS_CA_VOLUME)
            mounts.append(RDS_CA_MOUNT)
            secrets.append(DATABASE_URL_ENV)
        container = {
            "name": "locust",
            "image": args.image,
            "args": command,
            "env": [
                {"name": "TEMPORAL_CONFIG_FILE", "value": f"{CONFIG_DIR}/client/temporal.toml"},
                *({"name": k, "value": v} for k, v in env.items()),
                *secrets,
            ],
            "ports": [{"name": "locust", "containerPort": LOCUST_PORT}],
            "resources": resources,
            "volumeMounts": mounts,
            "securityContext": CONTAINER_SECURITY,
        }
        deployment = k8s.apps.v1.Deployment(
            f"{name}-{role}",
            metadata={"name": app, "namespace": ns, "labels": labels},
            spec={
                "replicas": replicas,
                "selector": {"matchLabels": {"app.kubernetes.io/name": app}},
                "template": {
                    "metadata": {
                        "labels": labels,
                        "annotations": toml_checksum(self.temporal_toml),
                    },
                    "spec": {
                        "serviceAccountName": app,
                        "terminationGracePeriodSeconds": 30,
                        "securityContext": POD_SECURITY,
                        "nodeSelector": {"haul.dev/node-group": args.config.node_group},
                        "tolerations": args.tolerations,
                        "containers": [container],
                        "volumes": volumes,
                    },
                },
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.namespace, *needs]),
        )
        # Load generation may be interrupted (a run then fails loudly); the budget keeps a
        # drain from taking every worker at once.
        pod_disruption_budget(
            f"{name}-{role}-pdb",
            app,
            ns,
            labels,
            pulumi.ResourceOptions(parent=self, depends_on=[self.namespace]),
        )
        return deployment

"""Typed stack configuration: the input contract of every component.

`load()` reads the `haul:*` keys of the current stack, validates them, and returns a
`StackConfig`. It runs before any resource is declared, so a bad stack file stops the program
with a message that names the key, what is wrong with it, and what to do.

Temporal's own cluster settings are not modelled here: each cluster's `spec` block is an
`app.stack.spec.ClusterSpec`, the single model of a cluster, completed with what only infra
knows (see `infra/clusterspec.py`).
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import clusterspec
import pulumi
from policies.rules import SECRET_KEY_PATTERN, SECRET_REFERENCE_KEYS
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from app import versions
from app.stack.spec import CassandraStore, ClusterSpec, PostgresStore

Environment = Literal["dev", "prod"]
# RDS Postgres forces SSL (rds.force_ssl=1) by default from this major version on.
MIN_POSTGRES_MAJOR = 15


class ConfigError(ValueError):
    """The stack config is not deployable. The message says which key and what to do."""


class Model(BaseModel):
    """camelCase in the stack file, snake_case in Python; unknown keys are typos, so refused."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class ExistingNetwork(Model):
    vpc_id: str
    private_subnet_ids: list[str] = Field(min_length=2)
    public_subnet_ids: list[str] = Field(default_factory=list)


class NetworkConfig(Model):
    cidr: str = "10.0.0.0/16"
    # EKS and RDS subnet groups both need subnets in at least two availability zones, even for
    # a single-AZ dev stack (whose nodes and NAT then stay in the first zone).
    availability_zones: list[str] = Field(min_length=2, max_length=3)
    nat_gateways: Literal["single", "per-az"] = "per-az"
    existing: ExistingNetwork | None = None

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        net = ipaddress.ip_network(value)
        if net.prefixlen > 20:
            raise ValueError(f"network.cidr {value} is too small; use a /20 or larger")
        return value


class Taint(Model):
    key: str
    value: str = "true"
    effect: Literal["NO_SCHEDULE", "NO_EXECUTE", "PREFER_NO_SCHEDULE"] = "NO_SCHEDULE"

    @property
    def k8s_effect(self) -> str:
        """The effect as a pod's toleration spells it (EKS: NO_SCHEDULE, Kubernetes:
        NoSchedule)."""
        return "".join(w.capitalize() for w in self.effect.split("_"))


class NodeGroupConfig(Model):
    instance_types: list[str] = Field(min_length=1)
    min_size: int = Field(ge=0)
    desired_size: int = Field(ge=0)
    max_size: int = Field(ge=1)
    disk_gib: int = Field(default=50, ge=20)
    capacity_type: Literal["ON_DEMAND", "SPOT"] = "ON_DEMAND"
    taints: list[Taint] = Field(default_factory=list)

    @model_validator(mode="after")
    def _sizes(self) -> NodeGroupConfig:
        if not self.min_size <= self.desired_size <= self.max_size:
            raise ValueError(
                f"node group sizes must satisfy minSize <= desiredSize <= maxSize, got "
                f"{self.min_size} <= {self.desired_size} <= {self.max_size}"
            )
        return self


class EksConfig(Model):
    kubernetes_version: str = versions.EKS_KUBERNETES
    endpoint_public_access: bool = False
    public_access_cidrs: list[str] = Field(default_factory=list)
    # Cluster admins, including the role that runs `pulumi up` (the creator gets no access).
    admin_role_arns: list[str] = Field(min_length=1)
    # How many availability zones the node groups use (1 for a small dev stack).
    node_zones: int = Field(default=3, ge=1, le=3)
    node_groups: dict[str, NodeGroupConfig]

    @model_validator(mode="after")
    def _groups(self) -> EksConfig:
        missing = {"system", "temporal", "workers"} - set(self.node_groups)
        if missing:
            raise ValueError(
                "eks.nodeGroups must define system, temporal and workers; "
                f"missing {sorted(missing)}"
            )
        if self.endpoint_public_access and (
            not self.public_access_cidrs or "0.0.0.0/0" in self.public_access_cidrs
        ):
            raise ValueError(
                "eks.endpointPublicAccess needs eks.publicAccessCidrs, and never 0.0.0.0/0"
            )
        return self


class AddonsConfig(Model):
    keda: bool = True
    cert_manager: bool = True
    prometheus_stack: bool = True


class PostgresConfig(Model):
    instance_class: str
    allocated_storage_gib: int = Field(ge=20)
    max_allocated_storage_gib: int = Field(ge=20)
    multi_az: bool
    deletion_protection: bool
    backup_retention_days: int = Field(default=7, ge=1, le=35)
    engine_version: str = Field(
        default=versions.RDS_POSTGRES_ENGINE, pattern=r"^[0-9]+(\.[0-9]+)*$"
    )
    max_connections: int = Field(ge=50)
    # Extra CIDRs (a VPN, a peered VPC) admitted on 5432 besides the EKS cluster.
    allowed_cidrs: list[str] = Field(default_factory=list)
    # Knobs that exist only to be refused: a public or unencrypted database is never deployed.
    publicly_accessible: bool = False
    storage_encrypted: bool = True

    @property
    def engine_major(self) -> int:
        """The major version, as a number: "9.6" is older than "15", whatever strings say."""
        return int(self.engine_version.split(".")[0])

    @model_validator(mode="after")
    def _never(self) -> PostgresConfig:
        if self.engine_major < MIN_POSTGRES_MAJOR:
            raise ValueError(
                f"postgres.engineVersion {self.engine_version} is older than "
                f"{MIN_POSTGRES_MAJOR}; RDS forces SSL from {MIN_POSTGRES_MAJOR} on, and haul "
                f"deploys {versions.RDS_POSTGRES_ENGINE}: use {MIN_POSTGRES_MAJOR} or later"
            )
        if self.publicly_accessible:
            raise ValueError("postgres.publiclyAccessible must be false; RDS is never public")
        if not self.storage_encrypted:
            raise ValueError("postgres.storageEncrypted must be true; storage is KMS-encrypted")
        for cidr in self.allowed_cidrs:
            if ipaddress.ip_network(cidr).prefixlen == 0:
                raise ValueError(
                    f"postgres.allowedCidrs holds {cidr}; never open Postgres to the world"
                )
        return self


class ScyllaConfig(Model):
    """How the ScyllaDB nodes run; the datacenter, keyspace, replication and TLS are the
    cluster's `spec.persistence` (ClusterSpec)."""

    members_per_rack: int = Field(default=1, ge=1)
    storage_gib: int = Field(ge=100)
    cpu: str = "7"
    memory: str = "56Gi"
    node_group: NodeGroupConfig


class Resources(Model):
    cpu_request: str
    memory_request: str
    # Limits are required by the policy pack; the model lets a stack omit them so that the
    # policy, not a parse error, explains why.
    cpu_limit: str | None = None
    memory_limit: str | None = None

    def k8s(self) -> dict[str, Any]:
        limits = {k: v for k, v in (("cpu", self.cpu_limit), ("memory", self.memory_limit)) if v}
        out: dict[str, Any] = {"requests": {"cpu": self.cpu_request, "memory": self.memory_request}}
        if limits:
            out["limits"] = limits
        return out


class ServiceConfig(Model):
    replicas: int = Field(ge=1)
    resources: Resources


class WebOidc(Model):
    issuer_url: str
    client_id: str
    # The client secret lives in AWS Secrets Manager; the stack file holds only its ARN.
    client_secret_arn: str
    callback_url: str


class WebConfig(Model):
    enabled: bool = False
    oidc: WebOidc | None = None


class TemporalServices(Model):
    frontend: ServiceConfig
    history: ServiceConfig
    matching: ServiceConfig
    worker: ServiceConfig


class ClusterConfig(Model):
    """One Temporal cluster. `spec` is its ClusterSpec, the only model of the cluster (backend,
    keyspace, datacenter, replication, TLS, shards, namespaces); the rest is what only infra
    knows: instance and node sizes, replicas, the Web UI."""

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")
    spec: ClusterSpec
    services: TemporalServices
    postgres: PostgresConfig
    scylla: ScyllaConfig | None = None
    web: WebConfig = WebConfig()
    admintools: bool = False
    mtls: bool = False

    @property
    def backend(self) -> str:
        """Where the default store lives: postgres (RDS) or scylla (ScyllaDB on EKS)."""
        return self.spec.persistence.kind

    @property
    def cql_store(self) -> CassandraStore | None:
        store = self.spec.persistence
        return store if isinstance(store, CassandraStore) else None

    @property
    def postgres_stores(self) -> list[PostgresStore]:
        """The spec's stores that live on this cluster's RDS instance."""
        return [s for s in (self.spec.persistence, self.spec.visibility) if s.kind == "postgres"]

    @model_validator(mode="after")
    def _store(self) -> ClusterConfig:
        if self.backend == "cassandra":
            raise ValueError(
                f"cluster {self.name}: spec.persistence.kind cassandra is for local clusters; "
                "infra deploys ScyllaDB, so use kind: scylla"
            )
        if self.backend == "scylla" and self.scylla is None:
            raise ValueError(
                f"cluster {self.name}: spec.persistence kind scylla needs a scylla block"
            )
        if self.backend == "postgres" and self.scylla is not None:
            raise ValueError(
                f"cluster {self.name}: a scylla block needs spec.persistence kind: scylla"
            )
        if self.web.enabled and self.web.oidc is None:
            raise ValueError(
                f"cluster {self.name}: web.enabled needs web.oidc; the Web UI is never open"
            )
        return self


class WorkerGroup(Model):
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")
    namespace: str
    task_queues: list[str] = Field(min_length=1)
    min_replicas: int = Field(ge=1)
    max_replicas: int = Field(ge=1)
    resources: Resources
    # The longest activity's graceful shutdown, so pods are never killed mid-activity.
    max_activity_grace_seconds: int = Field(ge=1)
    backlog_per_replica: int = Field(default=50, ge=1)
    max_concurrent_activities: int = Field(default=100, ge=1)
    # The /tmp emptyDir: blob uploads spool there, up to max_concurrent_activities at once.
    scratch_size: str = Field(default="4Gi", pattern=r"^[0-9]+(Mi|Gi)$")


class ApiConfig(Model):
    """`haul api` (the failure inbox) in the workers' namespace, behind a ClusterIP Service."""

    enabled: bool = True
    # Two keep the inbox up through a node drain (its PDB lets one go at a time). Each replica
    # also polls every cluster; the store's unique key makes their overlap harmless.
    replicas: int = Field(default=2, ge=1, le=10)
    resources: Resources = Resources(
        cpu_request="250m", memory_request="256Mi", cpu_limit="1", memory_limit="512Mi"
    )
    # Reads (pages and GET endpoints) need the token too (HAUL_API_READ_AUTH).
    read_auth: bool = False
    # The Temporal UI its workflow links point at; empty: no links.
    temporal_ui_url: str = ""
    # Namespaces whose pods may call it (an ingress controller's, say), besides its own.
    client_namespaces: list[
        Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
    ] = []


class ExternalCluster(Model):
    """A Temporal cluster this program does not deploy, such as the Temporal Cloud namespace a
    migration leaves: workers reach it over mTLS with a client certificate and key from a
    `kubernetes.io/tls` Secret you create in the workers' namespace (its server certificate is
    publicly trusted, so no CA is mounted)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")
    address: str = Field(pattern=r"^[A-Za-z0-9.-]+:[0-9]{1,5}$")
    namespace: str = Field(min_length=1)
    secret_name: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{0,251}[a-z0-9]$")


class AppsConfig(Model):
    image_tag: str
    # Temporal clusters the workers connect to, one envconfig profile each. Two during a
    # migration; their order means nothing: which cluster takes new work is the migration
    # phase in the app database (`haul migrate`), which every worker pod follows.
    clusters: list[str] = Field(min_length=1, max_length=2)
    keda: bool = True
    namespaces: dict[Literal["worker"], str] = {"worker": "haul-workers"}
    worker_groups: list[WorkerGroup] = Field(min_length=1)
    # The app database (idempotency rows, failure store, migration phase) is the `haul`
    # database on this cluster's RDS instance; default: the first cluster. Required with two
    # apps clusters, and kept through a migration: both sides must read one phase.
    database_cluster: str | None = None
    # Connections one app pod may hold at once, for the RDS connection budget.
    db_connections_per_pod: int = Field(default=10, ge=1)
    api: ApiConfig = ApiConfig()
    # Clusters outside this stack that `clusters` may name (Temporal Cloud); see ExternalCluster.
    external_clusters: list[ExternalCluster] = []

    def external(self, name: str) -> ExternalCluster | None:
        return next((e for e in self.external_clusters if e.name == name), None)

    def app_database_cluster(self, clusters: list[ClusterConfig]) -> str:
        return self.database_cluster or clusters[0].name


class LoadGeneratorConfig(Model):
    """Locust on EKS: one master pod, where `haul loadtest run --expect-workers N` runs, and
    N worker pods that join it. Off by default; it puts load on the first apps cluster."""

    enabled: bool = False
    namespace: str = Field(default="haul-loadtest", pattern=r"^[a-z][a-z0-9-]{1,61}[a-z0-9]$")
    workers: int = Field(default=2, ge=1, le=200)
    node_group: str = "workers"
    # One Locust worker is one Python process: a core is what it can use.
    master: Resources = Resources(
        cpu_request="500m", memory_request="512Mi", cpu_limit="2", memory_limit="2Gi"
    )
    worker: Resources = Resources(
        cpu_request="1", memory_request="512Mi", cpu_limit="1", memory_limit="1Gi"
    )
    # Each pod's /tmp emptyDir (parcel_ingest spools uploads there).
    scratch_size: str = Field(default="1Gi", pattern=r"^[0-9]+(Mi|Gi)$")


class ObservabilityConfig(Model):
    otlp_endpoint: str
    scrape_interval: str = "30s"


DEFAULT_RDS_CA_MOUNT = "/etc/temporal/rds-ca/global-bundle.pem"


class TlsConfig(Model):
    # PEM bundle of the RDS certificate authorities (global-bundle.pem from AWS), read at
    # deploy time from this path relative to infra/. It cannot be fetched by the program.
    rds_ca_bundle_file: str
    # Where the bundle is mounted in the Temporal server pods.
    rds_ca_mount_path: str = DEFAULT_RDS_CA_MOUNT


class StackConfig(Model):
    environment: Environment
    region: str
    network: NetworkConfig
    eks: EksConfig
    addons: AddonsConfig = AddonsConfig()
    tls: TlsConfig
    clusters: list[ClusterConfig] = Field(min_length=1, max_length=2)
    apps: AppsConfig
    observability: ObservabilityConfig
    loadgen: LoadGeneratorConfig = LoadGeneratorConfig()
    # Stack whose outputs hold the deployed state the guardrails compare against. Empty means
    # this stack itself (organization/project/stack).
    previous_state_stack: str = ""

    @property
    def prod(self) -> bool:
        return self.environment == "prod"

    @model_validator(mode="before")
    @classmethod
    def _cluster_specs(cls, data: Any) -> Any:
        """Complete each cluster's `spec` with what infra knows before it becomes a
        ClusterSpec: name, environment, secrets and CA paths (see clusterspec.spec_input)."""
        if not isinstance(data, dict) or not isinstance(data.get("clusters"), list):
            return data
        tls = data.get("tls") if isinstance(data.get("tls"), dict) else {}
        ca = tls.get("rdsCaMountPath", tls.get("rds_ca_mount_path", DEFAULT_RDS_CA_MOUNT))
        env = data.get("environment")
        return {
            **data,
            "clusters": [
                clusterspec.spec_input(c, env, ca) if isinstance(c, dict) else c
                for c in data["clusters"]
            ],
        }

    @model_validator(mode="after")
    def _cross(self) -> StackConfig:
        names = [c.name for c in self.clusters]
        if len(set(names)) != len(names):
            raise ValueError(f"clusters must have distinct names, got {names}")
        for c in self.clusters:
            if c.scylla is not None and c.cql_store is not None:
                # One Scylla datacenter, one rack per zone: every replica needs its own node.
                store = c.cql_store
                rf = store.replication_for(self.environment)[store.datacenter]
                nodes = len(self.network.availability_zones) * c.scylla.members_per_rack
                if nodes < rf:
                    raise ValueError(
                        f"cluster {c.name}: replication factor {rf} in datacenter "
                        f"{store.datacenter} needs at least that many nodes, but {nodes} "
                        "racks x members are planned"
                    )
        if self.apps.database_cluster and self.apps.database_cluster not in names:
            raise ValueError(
                f"apps.databaseCluster {self.apps.database_cluster} is not in clusters {names}"
            )
        external = [e.name for e in self.apps.external_clusters]
        clash = sorted(set(external) & set(names)) or sorted(
            {n for n in external if external.count(n) > 1}
        )
        if clash:
            raise ValueError(f"apps.externalClusters names {clash} twice (or as a cluster too)")
        unknown = [n for n in self.apps.clusters if n not in names + external]
        if unknown:
            raise ValueError(
                f"apps.clusters names {unknown}, which are not in clusters {names} "
                f"or apps.externalClusters {external}"
            )
        if not [n for n in self.apps.clusters if n in names]:
            raise ValueError(
                "apps.clusters needs at least one cluster this stack deploys (the workers' "
                f"metrics and load target), one of {names}"
            )
        if len(self.apps.clusters) > 1 and not self.apps.database_cluster:
            raise ValueError(
                f"apps.clusters {self.apps.clusters} is a migration: set apps.databaseCluster "
                "to the cluster whose RDS holds the app database (and the migration phase), "
                "and keep it for the whole migration"
            )
        if self.loadgen.enabled:
            if self.loadgen.node_group not in self.eks.node_groups:
                raise ValueError(
                    f"loadgen.nodeGroup {self.loadgen.node_group} is not in eks.nodeGroups "
                    f"{sorted(self.eks.node_groups)}"
                )
            taken = {*self.apps.namespaces.values(), *names, "keda", "monitoring"}
            if self.loadgen.namespace in taken:
                raise ValueError(
                    f"loadgen.namespace {self.loadgen.namespace} is already used; the load "
                    "generator gets a namespace of its own"
                )
        if self.prod:
            # TLS to the databases is ClusterSpec's rule, checked when each spec is built.
            for c in self.clusters:
                pg = c.postgres
                if not pg.multi_az or not pg.deletion_protection:
                    raise ValueError(
                        f"cluster {c.name}: prod Postgres needs multiAz and deletionProtection"
                    )
                if c.admintools:
                    raise ValueError(f"cluster {c.name}: admintools must be off in prod")
                if not c.mtls:
                    raise ValueError(
                        f"cluster {c.name}: prod needs mtls: true; without it any pod that "
                        "reaches the frontend may call it"
                    )
                cql = c.cql_store
                if cql is not None and not cql.tls.enable_host_verification:
                    raise ValueError(
                        f"cluster {c.name}: prod needs spec.persistence.tls."
                        "enable_host_verification: true, so Temporal checks the Scylla host "
                        "against its CA"
                    )
        elif len(self.network.availability_zones) < 2:
            raise ValueError("network.availabilityZones needs two zones")
        return self

    def cluster(self, name: str) -> ClusterConfig:
        return next(c for c in self.clusters if c.name == name)


def plaintext_secret_keys(raw: dict[str, Any], secret_keys: set[str]) -> list[str]:
    """Config paths that look like credentials and are not Pulumi secrets."""
    found: list[str] = []

    def walk(value: Any, path: str, top: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                sub = f"{path}.{k}"
                if (
                    SECRET_KEY_PATTERN.search(str(k))
                    and str(k).lower() not in SECRET_REFERENCE_KEYS
                    and isinstance(v, str | int)
                    and top not in secret_keys
                ):
                    found.append(sub)
                walk(v, sub, top)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, f"{path}[{i}]", top)

    for key, value in raw.items():
        if SECRET_KEY_PATTERN.search(key.split(":")[-1]) and key not in secret_keys:
            found.append(key)
        walk(value, key, key)
    return found


def parse(raw: dict[str, Any], secret_keys: set[str] | None = None) -> StackConfig:
    """Validate raw `haul:*` config (values already decoded from JSON) into a StackConfig."""
    leaked = plaintext_secret_keys(raw, secret_keys or set())
    if leaked:
        raise ConfigError(
            f"stack config holds credentials in plain text at {leaked}; store them with "
            "`pulumi config set --secret` or reference a Secrets Manager ARN instead"
        )
    fields = {k.split(":", 1)[1]: v for k, v in raw.items() if k.startswith("haul:")}
    if "region" not in fields and raw.get("aws:region"):
        fields["region"] = raw["aws:region"]
    try:
        return StackConfig.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"haul:{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"invalid stack config: {problems}") from None


def load(project_dir: Path) -> StackConfig:
    """Read this stack's `haul:*` config from the Pulumi engine, and check the CA bundle."""
    from pulumi.runtime.config import CONFIG, get_config_env, is_config_secret

    # Every haul:* key, known or not: an unknown key is a typo, and any key may leak a secret.
    keys = sorted(k for k in {**get_config_env(), **CONFIG.get()} if k.startswith("haul:"))
    raw: dict[str, Any] = {}
    secret_keys: set[str] = set()
    for key in keys:
        value = pulumi.Config("haul").get(key.split(":", 1)[1])
        if value is None:
            continue
        if is_config_secret(key):
            secret_keys.add(key)
        try:
            raw[key] = json.loads(value)
        except json.JSONDecodeError:
            raw[key] = value
    region = pulumi.Config("aws").get("region")
    if region:
        raw["aws:region"] = region
    stack = parse(raw, secret_keys)
    bundle = project_dir / stack.tls.rds_ca_bundle_file
    if not bundle.is_file() or b"BEGIN CERTIFICATE" not in bundle.read_bytes():
        raise ConfigError(
            f"haul:tls.rdsCaBundleFile: {bundle} is not a PEM certificate bundle; download the "
            "RDS global bundle from AWS (global-bundle.pem) and point this key at it"
        )
    return stack

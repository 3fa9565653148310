"""The haul policy rules, as plain functions plus their pulumi_policy wrappers.

Each rule is a function over resource types and their input properties (what the Pulumi engine
hands a policy pack, and what Pulumi mocks record), returning a list of violation messages. The
`PolicyPack` itself is built only in `policies/__main__.py`: constructing it starts a gRPC
server and blocks, so tests import this module instead.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

RDS_INSTANCE = "aws:rds/instance:Instance"
RDS_PARAMS = "aws:rds/parameterGroup:ParameterGroup"
SG = "aws:ec2/securityGroup:SecurityGroup"
SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
SG_INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
RELEASE = "kubernetes:helm.sh/v3:Release"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
STORAGE_CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"
EKS_ADDON = "aws:eks/addon:Addon"
SCYLLA_CLUSTER = "kubernetes:scylla.scylladb.com/v1:ScyllaCluster"

TEMPORAL_SERVICES = ("frontend", "history", "matching", "worker")
# Postgres, CQL, and the Temporal frontend's gRPC and HTTP ports.
PROTECTED_PORTS = {
    5432: "Postgres",
    9042: "CQL",
    7233: "Temporal frontend gRPC",
    7243: "Temporal frontend HTTP",
}
SECRET_KEY_PATTERN = re.compile(r"(password|passwd|secret|token|private[_-]?key|api[_-]?key)", re.I)
# Keys that name where a secret lives, not the secret itself.
SECRET_REFERENCE_KEYS = {
    "existingsecret",
    "secretname",
    "secretkey",
    "secretarn",
    "clientsecretarn",
    "additionalenvsecretname",
    "secretkeyref",
    "passwordkey",
}


@dataclass(frozen=True)
class Res:
    """A resource as a policy sees it: type, name and input properties."""

    type: str
    name: str
    props: Mapping[str, Any]


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def environment(resources: Iterable[Res]) -> str | None:
    """The stack's environment, from the `haul.dev/environment` tag every AWS resource has."""
    for r in resources:
        tags = r.props.get("tags") or {}
        if isinstance(tags, Mapping) and tags.get("haul.dev/environment"):
            return str(tags["haul.dev/environment"])
    return None


def temporal_releases(resources: Iterable[Res]) -> list[Res]:
    return [r for r in resources if r.type == RELEASE and r.props.get("chart") == "temporal"]


def _values(release: Res) -> Mapping[str, Any]:
    return release.props.get("values") or {}


def _datastores(release: Res) -> dict[str, Mapping[str, Any]]:
    persistence = _values(release).get("server", {}).get("config", {}).get("persistence", {})
    return dict(persistence.get("datastores") or {})


def _has_literal(value: Any) -> bool:
    if isinstance(value, Mapping):
        return any(
            _has_literal(v) for k, v in value.items() if str(k).lower() not in SECRET_REFERENCE_KEYS
        )
    if isinstance(value, list):
        return any(_has_literal(v) for v in value)
    return isinstance(value, str | int) and not isinstance(value, bool) and value != ""


def plaintext_secret_paths(value: Any, path: str = "") -> list[str]:
    """Paths under `value` whose key names a credential and that hold a literal value."""
    found: list[str] = []
    if isinstance(value, Mapping):
        for k, v in value.items():
            sub = f"{path}.{k}" if path else str(k)
            named = SECRET_KEY_PATTERN.search(str(k))
            if named and str(k).lower() not in SECRET_REFERENCE_KEYS and _has_literal(v):
                found.append(sub)
            else:
                found += plaintext_secret_paths(v, sub)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            # An env entry {"name": "X_TOKEN", "value": "..."} is a literal credential too.
            if (
                isinstance(v, Mapping)
                and isinstance(v.get("name"), str)
                and SECRET_KEY_PATTERN.search(v["name"])
                and v.get("value")
            ):
                found.append(f"{path}[{i}]({v['name']})")
            found += plaintext_secret_paths(v, f"{path}[{i}]")
    return found


def _world(cidr: Any) -> bool:
    try:
        return ipaddress.ip_network(str(cidr), strict=False).prefixlen == 0
    except ValueError:
        return False


def _ports_hit(from_port: Any, to_port: Any, protocol: Any) -> list[int]:
    if str(protocol) in ("-1", "all"):
        return list(PROTECTED_PORTS)
    lo = int(from_port if from_port is not None else 0)
    hi = int(to_port if to_port is not None else 65535)
    return [p for p in PROTECTED_PORTS if lo <= p <= hi]


# ---------------------------------------------------------------------------------------------
# rules
# ---------------------------------------------------------------------------------------------


def check_no_public_rds(r: Res) -> list[str]:
    if r.type == RDS_INSTANCE and r.props.get("publiclyAccessible"):
        return [f"RDS instance {r.name} is publicly accessible; set publicly_accessible=False"]
    return []


def check_encrypted_storage(r: Res) -> list[str]:
    encrypted = r.props.get("storageEncrypted") and r.props.get("kmsKeyId")
    if r.type == RDS_INSTANCE and not encrypted:
        return [f"RDS instance {r.name} storage is not KMS-encrypted"]
    if (
        r.type == STORAGE_CLASS
        and str((r.props.get("parameters") or {}).get("encrypted")) != "true"
    ):
        return [f"StorageClass {r.name} does not encrypt its volumes (parameters.encrypted)"]
    return []


def check_tls_in_production(resources: list[Res]) -> list[str]:
    if environment(resources) != "prod":
        return []
    out: list[str] = []
    for r in resources:
        if r.type == RDS_PARAMS:
            params = {p.get("name"): str(p.get("value")) for p in r.props.get("parameters") or []}
            if params.get("rds.force_ssl") != "1":
                out.append(f"parameter group {r.name} does not set rds.force_ssl=1 in production")
    for rel in temporal_releases(resources):
        for store, body in _datastores(rel).items():
            for driver, conf in body.items():
                tls = conf.get("tls") or {}
                if not tls.get("enabled"):
                    out.append(f"Temporal release {rel.name}: {store} store ({driver}) has TLS off")
                elif not (tls.get("enableHostVerification") and tls.get("caFile")):
                    what = "RDS" if driver == "sql" else "Scylla"
                    out.append(
                        f"Temporal release {rel.name}: {store} store does not verify the "
                        f"{what} host against the CA bundle"
                    )
    return out


def check_frontend_mtls_in_production(resources: list[Res]) -> list[str]:
    """In production the frontend takes only callers with a certificate from the cluster CA."""
    if environment(resources) != "prod":
        return []
    out = []
    for rel in temporal_releases(resources):
        tls = _values(rel).get("server", {}).get("tls") or {}
        frontend, internode = tls.get("frontend") or {}, tls.get("internode") or {}
        if not (frontend.get("enabled") and frontend.get("requireClientAuth")):
            out.append(
                f"Temporal release {rel.name}: the frontend does not require client "
                "certificates (mTLS) in production; set mtls: true on the cluster"
            )
        if not internode.get("enabled"):
            out.append(f"Temporal release {rel.name}: internode TLS is off in production")
    return out


def check_frontend_authorizer_in_production(resources: list[Res]) -> list[str]:
    """With mTLS alone every holder of a cluster certificate is an admin (the no-op
    authorizer); production runs the default JWT claim mapper and authorizer, with a key
    source, and gives the server's own system workers the internal frontend."""
    if environment(resources) != "prod":
        return []
    out = []
    for rel in temporal_releases(resources):
        server = _values(rel).get("server", {})
        auth = (server.get("config") or {}).get("authorization") or {}
        uris = (auth.get("jwtKeyProvider") or {}).get("keySourceURIs") or []
        if not (
            auth.get("authorizer") == "default" and auth.get("claimMapper") == "default" and uris
        ):
            out.append(
                f"Temporal release {rel.name}: the frontend does not run the JWT authorizer "
                "(server.config.authorization: authorizer and claimMapper default, with "
                "jwtKeyProvider.keySourceURIs), so every client certificate is an admin"
            )
        if not (server.get("internal-frontend") or {}).get("enabled"):
            out.append(
                f"Temporal release {rel.name}: no internal frontend (server.internal-frontend."
                "enabled); with the authorizer on, the server's system workers (no JWT) would "
                "be denied"
            )
    return out


def check_grafana_admin_from_secret(r: Res) -> list[str]:
    """kube-prometheus-stack's Grafana logs in with the chart's well-known default password
    unless its admin login comes from a Secret."""
    if r.type != RELEASE or r.props.get("chart") != "kube-prometheus-stack":
        return []
    grafana = (r.props.get("values") or {}).get("grafana") or {}
    if grafana.get("enabled", True) and not (grafana.get("admin") or {}).get("existingSecret"):
        return [
            f"Helm release {r.name}: Grafana keeps the chart's default admin password; set "
            "grafana.admin.existingSecret to a Secret with a generated password"
        ]
    return []


def check_network_policy_enforcement(r: Res) -> list[str]:
    """The VPC CNI enforces NetworkPolicies only with its network-policy agent turned on."""
    if r.type != EKS_ADDON or r.props.get("addonName") != "vpc-cni":
        return []
    try:
        values = json.loads(r.props.get("configurationValues") or "{}")
    except ValueError:
        values = {}
    if str(values.get("enableNetworkPolicy")).lower() != "true":
        return [
            f"EKS addon {r.name} (vpc-cni) does not set enableNetworkPolicy: every "
            "NetworkPolicy is inert; set it in the addon's configuration values"
        ]
    return []


def check_scylla_authentication(resources: list[Res]) -> list[str]:
    """Scylla asks every CQL client for a password, and Temporal gives one from a Secret."""
    out = []
    configs = {
        (r.props.get("metadata", {}).get("namespace"), r.props.get("metadata", {}).get("name")): r
        for r in resources
        if r.type == CONFIG_MAP
    }
    for sc in (r for r in resources if r.type == SCYLLA_CLUSTER):
        ns = sc.props.get("metadata", {}).get("namespace")
        racks = sc.props.get("spec", {}).get("datacenter", {}).get("racks") or []
        for rack in racks:
            cm = configs.get((ns, rack.get("scyllaConfig")))
            text = str(((cm.props.get("data") or {}) if cm else {}).get("scylla.yaml", ""))
            if not re.search(r"^authenticator:\s*PasswordAuthenticator\s*$", text, re.M):
                out.append(
                    f"ScyllaCluster {sc.name} rack {rack.get('name')}: scylla.yaml does not "
                    "set authenticator: PasswordAuthenticator; any pod could write the keyspace"
                )
    for rel in temporal_releases(resources):
        for store, body in _datastores(rel).items():
            cql = body.get("cassandra")
            if cql is not None and not (cql.get("user") and cql.get("existingSecret")):
                out.append(
                    f"Temporal release {rel.name}: {store} store connects to Scylla without a "
                    "user and a password Secret (existingSecret)"
                )
    return out


def check_scylla_client_certificates(resources: list[Res]) -> list[str]:
    """Scylla refuses CQL clients without a certificate from its CA, and Temporal has one:
    a password alone is not enough for a pod that reaches the CQL port."""
    out = []
    configs = {
        (r.props.get("metadata", {}).get("namespace"), r.props.get("metadata", {}).get("name")): r
        for r in resources
        if r.type == CONFIG_MAP
    }
    for sc in (r for r in resources if r.type == SCYLLA_CLUSTER):
        ns = sc.props.get("metadata", {}).get("namespace")
        for rack in sc.props.get("spec", {}).get("datacenter", {}).get("racks") or []:
            cm = configs.get((ns, rack.get("scyllaConfig")))
            text = str(((cm.props.get("data") or {}) if cm else {}).get("scylla.yaml", ""))
            required = re.search(r"^\s+require_client_auth:\s*true\s*$", text, re.M)
            trusted = re.search(r"^\s+truststore:\s*\S+", text, re.M)
            if not (required and trusted):
                out.append(
                    f"ScyllaCluster {sc.name} rack {rack.get('name')}: scylla.yaml does not set "
                    "client_encryption_options.require_client_auth: true with a truststore; any "
                    "pod that reaches CQL could try passwords"
                )
    for rel in temporal_releases(resources):
        for store, body in _datastores(rel).items():
            cql = body.get("cassandra")
            tls = (cql or {}).get("tls") or {}
            if cql is not None and not (tls.get("certFile") and tls.get("keyFile")):
                out.append(
                    f"Temporal release {rel.name}: {store} store has no Scylla client "
                    "certificate (tls.certFile and tls.keyFile)"
                )
    return out


def check_deletion_protection_in_production(resources: list[Res]) -> list[str]:
    if environment(resources) != "prod":
        return []
    out = []
    for r in resources:
        if r.type != RDS_INSTANCE:
            continue
        if not r.props.get("deletionProtection"):
            out.append(f"RDS instance {r.name} has no deletion protection in production")
        if r.props.get("skipFinalSnapshot") or not r.props.get("finalSnapshotIdentifier"):
            out.append(f"RDS instance {r.name} takes no final snapshot in production")
    return out


def check_history_shards(r: Res) -> list[str]:
    if r.type != RELEASE or r.props.get("chart") != "temporal":
        return []
    persistence = _values(r).get("server", {}).get("config", {}).get("persistence", {})
    shards = persistence.get("numHistoryShards")
    if shards is None:
        return [f"Temporal release {r.name} does not set numHistoryShards"]
    n = int(shards)
    if n <= 0 or n & (n - 1):
        return [f"Temporal release {r.name}: numHistoryShards {n} is not a power of two"]
    return []


def _limits_missing(resources: Any) -> bool:
    limits = (resources or {}).get("limits") or {}
    return not (limits.get("cpu") and limits.get("memory"))


def check_pdb_and_limits(resources: list[Res]) -> list[str]:
    out: list[str] = []
    pdbs = [r for r in resources if r.type == PDB]
    for d in (r for r in resources if r.type == DEPLOYMENT):
        ns = d.props.get("metadata", {}).get("namespace")
        template = d.props.get("spec", {}).get("template", {})
        labels = template.get("metadata", {}).get("labels", {})
        for c in template.get("spec", {}).get("containers", []):
            if _limits_missing(c.get("resources")):
                out.append(
                    f"Deployment {d.name} container {c.get('name')} has no cpu/memory limits"
                )
        covered = any(
            p.props.get("metadata", {}).get("namespace") == ns
            and (sel := p.props.get("spec", {}).get("selector", {}).get("matchLabels"))
            and all(labels.get(k) == v for k, v in sel.items())
            for p in pdbs
        )
        if not covered:
            out.append(f"Deployment {d.name} has no PodDisruptionBudget")
    for rel in temporal_releases(resources):
        server = _values(rel).get("server", {})
        for svc in TEMPORAL_SERVICES:
            sv = server.get(svc, {})
            # The chart renders a PDB only for more than one replica.
            if not sv.get("podDisruptionBudget") or int(sv.get("replicaCount", 0)) < 2:
                out.append(
                    f"Temporal release {rel.name}: {svc} gets no PDB (needs "
                    "podDisruptionBudget and replicaCount >= 2)"
                )
            if _limits_missing(sv.get("resources")):
                out.append(f"Temporal release {rel.name}: {svc} has no cpu/memory limits")
    return out


def check_no_plaintext_secrets(r: Res) -> list[str]:
    if r.type == RELEASE:
        leaked = plaintext_secret_paths(r.props.get("values") or {})
        return [f"Helm release {r.name} has a plaintext secret in values at {p}" for p in leaked]
    if r.type == CONFIG_MAP:
        leaked = [k for k in (r.props.get("data") or {}) if SECRET_KEY_PATTERN.search(k)]
        return [f"ConfigMap {r.name} holds a credential-like key {k}" for k in leaked]
    return []


def check_no_world_open_ports(r: Res) -> list[str]:
    rules: list[tuple[Any, Any, Any, list[Any]]] = []
    if r.type == SG_INGRESS:
        rules.append(
            (
                r.props.get("fromPort"),
                r.props.get("toPort"),
                r.props.get("ipProtocol"),
                [r.props.get("cidrIpv4"), r.props.get("cidrIpv6")],
            )
        )
    elif r.type == SG_RULE and r.props.get("type") == "ingress":
        rules.append(
            (
                r.props.get("fromPort"),
                r.props.get("toPort"),
                r.props.get("protocol"),
                [*(r.props.get("cidrBlocks") or []), *(r.props.get("ipv6CidrBlocks") or [])],
            )
        )
    elif r.type == SG:
        for rule in r.props.get("ingress") or []:
            rules.append(
                (
                    rule.get("fromPort"),
                    rule.get("toPort"),
                    rule.get("protocol"),
                    [*(rule.get("cidrBlocks") or []), *(rule.get("ipv6CidrBlocks") or [])],
                )
            )
    out = []
    for lo, hi, proto, cidrs in rules:
        if any(_world(c) for c in cidrs if c):
            for port in _ports_hit(lo, hi, proto):
                out.append(f"{r.name} opens {PROTECTED_PORTS[port]} ({port}) to the world")
    return out


def connection_budget(resources: list[Res]) -> list[tuple[str, int, int]]:
    """(parameter group, connections the Temporal and app pods may open, max_connections)."""
    releases = {rel.props.get("name"): rel for rel in temporal_releases(resources)}
    out = []
    for r in resources:
        if r.type != RDS_PARAMS:
            continue
        params = {p.get("name"): p.get("value") for p in r.props.get("parameters") or []}
        if "max_connections" not in params:
            continue
        tags = r.props.get("tags") or {}
        clusters = str(tags.get("haul.dev/temporal-clusters", ""))
        total = int(tags.get("haul.dev/app-connections", 0))
        for cluster in filter(None, clusters.split(",")):
            rel = releases.get(cluster)
            if rel is None:
                continue
            server = _values(rel).get("server", {})
            pods = sum(int(server.get(s, {}).get("replicaCount", 1)) for s in TEMPORAL_SERVICES)
            per_pod = sum(
                int(body["sql"].get("maxConns", 0))
                for body in _datastores(rel).values()
                if "sql" in body
            )
            total += pods * per_pod
        out.append((r.name, total, int(params["max_connections"])))
    return out


def check_connection_budget(resources: list[Res]) -> list[str]:
    return [
        f"parameter group {name}: Temporal pods x maxConns + app pods = {used} connections, "
        f"not under max_connections {limit}; raise max_connections or lower replicas or pools"
        for name, used, limit in connection_budget(resources)
        if used >= limit
    ]


RESOURCE_RULES = {
    "no-public-rds": (check_no_public_rds, "RDS instances are never publicly accessible"),
    "encrypted-storage": (check_encrypted_storage, "Databases and volumes are encrypted at rest"),
    "history-shards-power-of-two": (
        check_history_shards,
        "numHistoryShards is set and a power of two",
    ),
    "no-plaintext-secrets": (
        check_no_plaintext_secrets,
        "No plaintext credentials in Helm values or ConfigMaps",
    ),
    "no-world-open-ports": (
        check_no_world_open_ports,
        "No security group opens a database or frontend port to the world",
    ),
    "network-policy-enforcement": (
        check_network_policy_enforcement,
        "The VPC CNI enforces NetworkPolicies",
    ),
    "grafana-admin-from-secret": (
        check_grafana_admin_from_secret,
        "Grafana's admin password comes from a Secret, never the chart's default",
    ),
}
STACK_RULES = {
    "tls-in-production": (check_tls_in_production, "Database TLS is on in production"),
    "deletion-protection-in-production": (
        check_deletion_protection_in_production,
        "RDS has deletion protection and a final snapshot",
    ),
    "pdb-and-limits": (check_pdb_and_limits, "Every Deployment has a PDB and resource limits"),
    "frontend-mtls-in-production": (
        check_frontend_mtls_in_production,
        "The frontend requires client certificates in production",
    ),
    "frontend-authorizer-in-production": (
        check_frontend_authorizer_in_production,
        "A client certificate is not an admin: the frontend runs the JWT authorizer",
    ),
    "scylla-authentication": (
        check_scylla_authentication,
        "Scylla requires CQL authentication, and Temporal authenticates from a Secret",
    ),
    "scylla-client-certificates": (
        check_scylla_client_certificates,
        "Scylla requires client certificates, and Temporal presents one",
    ),
    "rds-connection-budget": (
        check_connection_budget,
        "Temporal pods x maxConns stay under max_connections",
    ),
}


def evaluate(resources: list[Res]) -> dict[str, list[str]]:
    """Every rule over a whole stack: {rule name: violations}."""
    out = {name: [m for r in resources for m in fn(r)] for name, (fn, _) in RESOURCE_RULES.items()}
    out.update({name: fn(resources) for name, (fn, _) in STACK_RULES.items()})
    return out


def _resource_policy(name: str, fn, description: str) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        for message in fn(Res(args.resource_type, args.name, args.props)):
            report(message, None)

    return ResourceValidationPolicy(
        name=name,
        description=description,
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
    )


def _stack_policy(name: str, fn, description: str) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        resources = [Res(r.resource_type, r.name, r.props) for r in args.resources]
        for message in fn(resources):
            report(message, None)

    return StackValidationPolicy(
        name=name,
        description=description,
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
    )


def policies() -> list:
    """The policies of the haul pack, mandatory all."""
    return [
        *(_resource_policy(n, fn, d) for n, (fn, d) in RESOURCE_RULES.items()),
        *(_stack_policy(n, fn, d) for n, (fn, d) in STACK_RULES.items()),
    ]

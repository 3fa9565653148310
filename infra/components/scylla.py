"""ScyllaPersistence: ScyllaDB through the Scylla Operator, one rack per availability zone.

The Temporal keyspace is created by our bootstrap Job, not by the chart: Temporal uses
lightweight transactions, so the keyspace needs tablets disabled, which the chart cannot do. The
Job mounts the cluster's rendered ClusterSpec and runs `haul db scylla-bootstrap --spec FILE`
from the haul image, so keyspace, datacenter, replication and TLS are the spec's
(NetworkTopologyStrategy, tablets off); the Temporal release depends on it and sets
`createDatabase: false`.

CQL needs a password (PasswordAuthenticator, CassandraAuthorizer). Before the keyspace
bootstrap, the Job's first container (cqlsh from the Scylla image) moves the built-in superuser
off its well-known password onto a generated one and creates Temporal's role with the
password the chart and the bootstrap read from the cluster's Secret (the spec's password
reference).
"""

from __future__ import annotations

import hashlib
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
import pulumi_tls as tls
from clusterspec import (
    CQL_PORT,
    SCYLLA_CA_MOUNT,
    SCYLLA_CLIENT_CERT,
    SCYLLA_CLIENT_CERT_DIR,
    SCYLLA_CLIENT_KEY,
    SCYLLA_USER,
    scylla_namespace,
    scylla_password_secret,
)
from config import ScyllaConfig
from pydantic import BaseModel, ConfigDict, SkipValidation

from app import versions
from app.stack.spec import CassandraStore
from app.stack.spec_render import render_spec_file
from components.workers import CONTAINER_SECURITY, secret_env

OPERATOR_REPO = "https://scylla-operator-charts.storage.googleapis.com/stable"
NODE_TAINT = {"key": "haul.dev/scylla", "operator": "Exists", "effect": "NoSchedule"}
TLS_DIR = "/etc/scylla-tls"
SPEC_DIR = "/etc/haul/spec"
SPEC_FILE = f"{SPEC_DIR}/cluster.yaml"
ADMIN_SECRET = "scylla-admin-credentials"
# The CQL client certificate (Temporal's and the bootstrap Job's), in the Scylla namespace and
# in the Temporal cluster's.
CLIENT_CERT_SECRET = "scylla-client-cert"
# Scylla's built-in superuser and the password every fresh cluster gives it.
SUPERUSER = "cassandra"
SCYLLA_AUTH = ("authenticator: PasswordAuthenticator", "authorizer: CassandraAuthorizer")
CLIENT_CERT_VOLUME = {"name": "client-cert", "secret": {"secretName": CLIENT_CERT_SECRET}}
CLIENT_CERT_MOUNT = {"name": "client-cert", "mountPath": SCYLLA_CLIENT_CERT_DIR, "readOnly": True}


def cql_roles_script(host: str, ca_file: str, user: str) -> str:
    """Idempotent: the superuser moves to $ADMIN_PASSWORD (once), `user` gets $CQL_PASSWORD
    and may create keyspaces. Passwords are alphanumeric, so they quote safely in CQL. cqlsh
    presents the client certificate (Scylla requires one) from its cqlshrc."""
    probe = "SELECT release_version FROM system.local"
    return (
        "\n".join(
            [
                "set -eu",
                'mkdir -p "$HOME/.cassandra"',
                "printf '[ssl]\\nusercert = %s\\nuserkey = %s\\n' "
                f'{SCYLLA_CLIENT_CERT} {SCYLLA_CLIENT_KEY} > "$HOME/.cassandra/cqlshrc"',
                f"export SSL_CERTFILE={ca_file} SSL_VALIDATE=true",
                f'cql() {{ cqlsh --ssl -u {SUPERUSER} -p "$1" -e "$2" {host} {CQL_PORT}; }}',
                f'until cql "$ADMIN_PASSWORD" "{probe}" >/dev/null 2>&1; do',
                f'  if cql {SUPERUSER} "{probe}" >/dev/null 2>&1; then',
                f"    cql {SUPERUSER} \"ALTER ROLE {SUPERUSER} WITH PASSWORD = '$ADMIN_PASSWORD'\"",
                "  else sleep 5; fi",
                "done",
                f'cql "$ADMIN_PASSWORD" "CREATE ROLE IF NOT EXISTS {user} WITH LOGIN = true '
                "AND PASSWORD = '$CQL_PASSWORD'\"",
                f'cql "$ADMIN_PASSWORD" "ALTER ROLE {user} WITH PASSWORD = \'$CQL_PASSWORD\'"',
                f'cql "$ADMIN_PASSWORD" "GRANT CREATE ON ALL KEYSPACES TO {user}"',
            ]
        )
        + "\n"
    )


class ScyllaPersistenceArgs(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str
    config: SkipValidation[ScyllaConfig]
    availability_zones: list[str]
    # The ClusterSpec's CQL store (datacenter, hosts), and the whole spec as deployed
    # (Output[ClusterSpec]), which the bootstrap Job reads.
    store: SkipValidation[CassandraStore]
    spec: Any
    # The haul image that carries `haul db scylla-bootstrap`.
    image: Any
    depends_on: list[Any] = []


class ScyllaPersistence(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: ScyllaPersistenceArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("haul:persistence:ScyllaPersistence", name, None, opts)
        cfg = args.config
        child = pulumi.ResourceOptions(parent=self)
        self.namespace_name = scylla_namespace(args.name)
        operator = k8s.helm.v3.Release(
            f"{name}-scylla-operator",
            name="scylla-operator",
            chart="scylla-operator",
            version=versions.SCYLLA_OPERATOR_CHART,
            namespace="scylla-operator",
            create_namespace=True,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=OPERATOR_REPO),
            atomic=True,
            timeout=900,
            opts=pulumi.ResourceOptions(parent=self, depends_on=args.depends_on),
        )
        ns = k8s.core.v1.Namespace(
            f"{name}-scylla",
            metadata={"name": self.namespace_name, "labels": {"haul.dev/part-of": name}},
            opts=child,
        )
        storage_class = k8s.storage.v1.StorageClass(
            f"{name}-scylla-gp3",
            metadata={"name": f"{args.name}-scylla-gp3"},
            provisioner="ebs.csi.aws.com",
            volume_binding_mode="WaitForFirstConsumer",
            allow_volume_expansion=True,
            reclaim_policy="Retain",
            parameters={
                "type": "gp3",
                "iops": "16000",
                "throughput": "1000",
                "encrypted": "true",
                "csi.storage.k8s.io/fstype": "xfs",
            },
            opts=child,
        )
        self.hosts = list(args.store.hosts)
        self._network_policy(name, args.name, ns)
        self.ca_pem = self._client_tls(name, ns)
        self.credentials = self._credentials(name, args.name, ns)
        resources = {
            "requests": {"cpu": cfg.cpu, "memory": cfg.memory},
            "limits": {"cpu": cfg.cpu, "memory": cfg.memory},
        }
        racks = [
            {
                "name": zone,
                "members": cfg.members_per_rack,
                "storage": {
                    "capacity": f"{cfg.storage_gib}Gi",
                    "storageClassName": f"{args.name}-scylla-gp3",
                },
                "resources": resources,
                "scyllaConfig": "scylla-config",
                "volumes": [{"name": "client-tls", "secret": {"secretName": "scylla-client-tls"}}],
                "volumeMounts": [{"name": "client-tls", "mountPath": TLS_DIR, "readOnly": True}],
                "placement": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [
                                {
                                    "matchExpressions": [
                                        {
                                            "key": "topology.kubernetes.io/zone",
                                            "operator": "In",
                                            "values": [zone],
                                        },
                                        {
                                            "key": "haul.dev/node-group",
                                            "operator": "In",
                                            "values": ["scylla"],
                                        },
                                    ]
                                }
                            ]
                        }
                    },
                    "tolerations": [NODE_TAINT],
                },
            }
            for zone in args.availability_zones
        ]
        self.scylla_cluster = k8s.apiextensions.CustomResource(
            f"{name}-scylla",
            api_version="scylla.scylladb.com/v1",
            kind="ScyllaCluster",
            metadata={"name": "scylla", "namespace": self.namespace_name},
            spec={
                "version": versions.SCYLLA,
                "repository": "docker.io/scylladb/scylla",
                "developerMode": False,
                "automaticOrphanedNodeCleanup": True,
                "datacenter": {"name": args.store.datacenter, "racks": racks},
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[operator, ns, storage_class]),
        )
        self.datacenter = args.store.datacenter
        self.bootstrap = self._bootstrap_job(name, args, ns)
        self.register_outputs({"hosts": self.hosts, "namespace": self.namespace_name})

    def _bootstrap_job(
        self, name: str, args: ScyllaPersistenceArgs, ns: pulumi.Resource
    ) -> k8s.batch.v1.Job:
        """`haul db scylla-bootstrap --spec` on the rendered ClusterSpec, mounted from a
        ConfigMap; the CA sits where the spec's tls.ca_file says, and a store password (when
        the spec names one) comes from its Secret through the spec's env var."""
        spec_text = args.spec.apply(render_spec_file)
        spec_map = k8s.core.v1.ConfigMap(
            f"{name}-cluster-spec",
            metadata={"name": "temporal-cluster-spec", "namespace": self.namespace_name},
            data={SPEC_FILE.rsplit("/", 1)[1]: spec_text},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[ns]),
        )
        env = []
        ref = args.store.password
        if ref is not None and ref.existing_secret:
            env.append(
                {
                    "name": ref.env_var,
                    "valueFrom": {
                        "secretKeyRef": {"name": ref.existing_secret, "key": ref.secret_key}
                    },
                }
            )
        ca_dir, ca_name = SCYLLA_CA_MOUNT.rsplit("/", 1)
        return k8s.batch.v1.Job(
            f"{name}-keyspace-bootstrap",
            metadata={"name": "temporal-keyspace-bootstrap", "namespace": self.namespace_name},
            spec={
                "backoffLimit": 20,
                "ttlSecondsAfterFinished": 86400,
                "template": {
                    "metadata": {
                        "labels": {"app.kubernetes.io/name": "scylla-bootstrap"},
                        # A changed spec replaces the Job, so the bootstrap runs again.
                        "annotations": {
                            "haul.dev/cluster-spec-sha256": spec_text.apply(
                                lambda t: hashlib.sha256(t.encode()).hexdigest()
                            )
                        },
                    },
                    "spec": {
                        "restartPolicy": "OnFailure",
                        "volumes": [
                            {
                                "name": "client-tls",
                                "secret": {
                                    "secretName": "scylla-client-tls",
                                    "items": [{"key": "ca.crt", "path": ca_name}],
                                },
                            },
                            {
                                "name": "cluster-spec",
                                "configMap": {"name": "temporal-cluster-spec"},
                            },
                            CLIENT_CERT_VOLUME,
                            {"name": "scratch", "emptyDir": {"sizeLimit": "64Mi"}},
                        ],
                        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
                        "initContainers": [self._roles_container(args, ca_dir, ca_name)],
                        "containers": [
                            {
                                "name": "bootstrap",
                                "image": args.image,
                                "args": ["haul", "db", "scylla-bootstrap", "--spec", SPEC_FILE],
                                "env": env,
                                "volumeMounts": [
                                    {"name": "client-tls", "mountPath": ca_dir, "readOnly": True},
                                    CLIENT_CERT_MOUNT,
                                    {
                                        "name": "cluster-spec",
                                        "mountPath": SPEC_DIR,
                                        "readOnly": True,
                                    },
                                ],
                                "resources": {
                                    "requests": {"cpu": "100m", "memory": "256Mi"},
                                    "limits": {"cpu": "500m", "memory": "512Mi"},
                                },
                                "securityContext": CONTAINER_SECURITY,
                            }
                        ],
                    },
                },
            },
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[self.scylla_cluster, spec_map, *self.credentials]
            ),
        )

    def _roles_container(self, args: ScyllaPersistenceArgs, ca_dir: str, ca_name: str) -> dict:
        """cqlsh from the Scylla image: the superuser's password and Temporal's role."""

        return {
            "name": "cql-roles",
            "image": f"docker.io/scylladb/scylla:{versions.SCYLLA}",
            "command": [
                "sh",
                "-c",
                cql_roles_script(args.store.hosts[0], f"{ca_dir}/{ca_name}", SCYLLA_USER),
            ],
            "env": [
                secret_env("ADMIN_PASSWORD", ADMIN_SECRET, "password"),
                secret_env("CQL_PASSWORD", scylla_password_secret(args.name), "password"),
                {"name": "HOME", "value": "/tmp"},
            ],
            "volumeMounts": [
                {"name": "client-tls", "mountPath": ca_dir, "readOnly": True},
                CLIENT_CERT_MOUNT,
                {"name": "scratch", "mountPath": "/tmp"},
            ],
            "resources": {
                "requests": {"cpu": "100m", "memory": "128Mi"},
                "limits": {"cpu": "500m", "memory": "256Mi"},
            },
            "securityContext": CONTAINER_SECURITY,
        }

    def _credentials(
        self, name: str, cluster: str, ns: pulumi.Resource
    ) -> list[k8s.core.v1.Secret]:
        """Generated CQL passwords: the superuser's (only here) and Temporal's role (here for
        the bootstrap Job, and in the Temporal namespace for the chart: `self.cql_password`)."""
        child = pulumi.ResourceOptions(parent=self)
        after_ns = pulumi.ResourceOptions(parent=self, depends_on=[ns])
        admin = random.RandomPassword(f"{name}-scylla-admin", length=32, special=False, opts=child)
        temporal = random.RandomPassword(
            f"{name}-scylla-temporal", length=32, special=False, opts=child
        )
        self.cql_password = temporal.result
        return [
            k8s.core.v1.Secret(
                f"{name}-scylla-admin",
                metadata={"name": ADMIN_SECRET, "namespace": self.namespace_name},
                type="Opaque",
                string_data={"password": admin.result},
                opts=after_ns,
            ),
            k8s.core.v1.Secret(
                f"{name}-scylla-temporal",
                metadata={
                    "name": scylla_password_secret(cluster),
                    "namespace": self.namespace_name,
                },
                type="Opaque",
                string_data={"password": temporal.result},
                opts=after_ns,
            ),
        ]

    def _network_policy(self, name: str, cluster: str, ns: pulumi.Resource) -> None:
        """CQL only from the Temporal cluster's namespace; the operator and pods of this
        namespace (members, the bootstrap Job) keep full access; Prometheus scrapes metrics."""

        def namespace(n: str) -> dict:
            return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": n}}}

        k8s.networking.v1.NetworkPolicy(
            f"{name}-scylla-ingress",
            metadata={"name": "scylla-ingress", "namespace": self.namespace_name},
            spec={
                "podSelector": {},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {"from": [{"podSelector": {}}, namespace("scylla-operator")]},
                    {
                        "from": [namespace(cluster)],
                        "ports": [{"protocol": "TCP", "port": CQL_PORT}],
                    },
                    {
                        "from": [namespace("monitoring")],
                        "ports": [{"protocol": "TCP", "port": 9180}],
                    },
                ],
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[ns]),
        )

    def _client_cert(
        self, name: str, ca_key_pem: Any, ca_pem: Any, opts: pulumi.ResourceOptions
    ) -> tuple[Any, Any]:
        """Temporal's CQL client certificate from the Scylla CA (client auth only), in a
        Secret of the Scylla namespace for the bootstrap Job; the Temporal cluster puts the
        same pair in its own namespace (`client_cert`, `client_key`)."""
        child = pulumi.ResourceOptions(parent=self)
        key = tls.PrivateKey(
            f"{name}-scylla-client", algorithm="ECDSA", ecdsa_curve="P256", opts=child
        )
        csr = tls.CertRequest(
            f"{name}-scylla-client",
            private_key_pem=key.private_key_pem,
            subject=tls.CertRequestSubjectArgs(common_name=SCYLLA_USER, organization="haul"),
            opts=child,
        )
        cert = tls.LocallySignedCert(
            f"{name}-scylla-client",
            cert_request_pem=csr.cert_request_pem,
            ca_private_key_pem=ca_key_pem,
            ca_cert_pem=ca_pem,
            validity_period_hours=24 * 365,
            early_renewal_hours=24 * 30,
            allowed_uses=["digital_signature", "key_encipherment", "client_auth"],
            opts=child,
        )
        k8s.core.v1.Secret(
            f"{name}-scylla-client-cert",
            metadata={"name": CLIENT_CERT_SECRET, "namespace": self.namespace_name},
            type="kubernetes.io/tls",
            string_data={"tls.crt": cert.cert_pem, "tls.key": key.private_key_pem},
            opts=opts,
        )
        return cert.cert_pem, key.private_key_pem

    def _client_tls(self, name: str, after: pulumi.Resource) -> pulumi.Output[str]:
        """A CA and a serving certificate for CQL client encryption, made with pulumi-tls.

        Temporal verifies the Scylla host against this CA; the CA certificate (not its key) is
        what the Temporal server pods mount.
        """
        child = pulumi.ResourceOptions(parent=self)
        ca_key = tls.PrivateKey(
            f"{name}-scylla-ca", algorithm="ECDSA", ecdsa_curve="P256", opts=child
        )
        ca = tls.SelfSignedCert(
            f"{name}-scylla-ca",
            private_key_pem=ca_key.private_key_pem,
            is_ca_certificate=True,
            validity_period_hours=24 * 365 * 5,
            allowed_uses=["cert_signing", "crl_signing"],
            subject=tls.SelfSignedCertSubjectArgs(
                common_name=f"{name} scylla CA", organization="haul"
            ),
            opts=child,
        )
        key = tls.PrivateKey(
            f"{name}-scylla-serving", algorithm="ECDSA", ecdsa_curve="P256", opts=child
        )
        csr = tls.CertRequest(
            f"{name}-scylla-serving",
            private_key_pem=key.private_key_pem,
            dns_names=[
                *self.hosts,
                f"*.{self.namespace_name}.svc.cluster.local",
                f"*.{self.namespace_name}.svc",
            ],
            subject=tls.CertRequestSubjectArgs(common_name=self.hosts[0], organization="haul"),
            opts=child,
        )
        cert = tls.LocallySignedCert(
            f"{name}-scylla-serving",
            cert_request_pem=csr.cert_request_pem,
            ca_private_key_pem=ca_key.private_key_pem,
            ca_cert_pem=ca.cert_pem,
            validity_period_hours=24 * 365,
            early_renewal_hours=24 * 30,
            allowed_uses=["digital_signature", "key_encipherment", "server_auth"],
            opts=child,
        )
        after_ns = pulumi.ResourceOptions(parent=self, depends_on=[after])
        k8s.core.v1.Secret(
            f"{name}-scylla-client-tls",
            metadata={"name": "scylla-client-tls", "namespace": self.namespace_name},
            type="kubernetes.io/tls",
            string_data={
                "tls.crt": cert.cert_pem,
                "tls.key": key.private_key_pem,
                "ca.crt": ca.cert_pem,
            },
            opts=after_ns,
        )
        self.client_cert, self.client_key = self._client_cert(
            name, ca_key.private_key_pem, ca.cert_pem, after_ns
        )
        k8s.core.v1.ConfigMap(
            f"{name}-scylla-config",
            metadata={"name": "scylla-config", "namespace": self.namespace_name},
            data={
                "scylla.yaml": "\n".join(
                    [
                        "client_encryption_options:",
                        "  enabled: true",
                        f"  certificate: {TLS_DIR}/tls.crt",
                        f"  keyfile: {TLS_DIR}/tls.key",
                        # A CQL client must present a certificate this CA signed.
                        "  require_client_auth: true",
                        f"  truststore: {TLS_DIR}/ca.crt",
                        *SCYLLA_AUTH,
                    ]
                )
                + "\n"
            },
            opts=after_ns,
        )
        return ca.cert_pem

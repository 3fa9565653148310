"""haul infrastructure: Temporal on EKS with RDS Postgres or ScyllaDB, and the haul workers.

Order: network and EKS, then persistence, then Temporal, then workers. The stack config is
validated (including every cluster's ClusterSpec) before any resource is declared.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pulumi
import pulumi_aws as aws

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import clusterspec  # noqa: E402
import config  # noqa: E402
import guardrails  # noqa: E402
import queues  # noqa: E402
from components.addons import ClusterAddons, ClusterAddonsArgs  # noqa: E402
from components.api import FailureApi, FailureApiArgs  # noqa: E402
from components.appdb import (  # noqa: E402
    APP_USER,
    MIGRATE_USER,
    AppDatabaseRoles,
    AppDatabaseRolesArgs,
)
from components.artifacts import Artifacts, ArtifactsArgs  # noqa: E402
from components.cluster import EksCluster, EksClusterArgs  # noqa: E402
from components.loadgen import LoadGenerator, LoadGeneratorArgs  # noqa: E402
from components.network import Network, NetworkArgs  # noqa: E402
from components.observability import Observability, ObservabilityArgs  # noqa: E402
from components.postgres import (  # noqa: E402
    PostgresPersistence,
    PostgresPersistenceArgs,
    app_database_url,
)
from components.scylla import ScyllaPersistence, ScyllaPersistenceArgs  # noqa: E402
from components.temporal import (  # noqa: E402
    TemporalCluster,
    TemporalClusterArgs,
    frontend_address,
    frontend_metrics_url,
    issuer_name,
)
from components.workers import RDS_CA_PATH, TemporalProfile, Workers, WorkersArgs  # noqa: E402

# A bad stack file, ClusterSpec or worker group stops here, before any resource.
stack = config.load(HERE)
queues.check_worker_groups(stack.apps.worker_groups, queues.discovered_task_queues())

name = f"haul-{pulumi.get_stack()}"
tags = {"haul.dev/stack": pulumi.get_stack(), "haul.dev/environment": stack.environment}
rds_ca_pem = (HERE / stack.tls.rds_ca_bundle_file).read_text()

network = Network(name, NetworkArgs(name=name, config=stack.network, tags=tags))
artifacts = Artifacts(name, ArtifactsArgs(name=name, prod=stack.prod, tags=tags))
# One storage-optimized node group carries every Scylla rack (one per zone), tainted for Scylla.
scylla_configs = [c.scylla for c in stack.clusters if c.scylla is not None]
scylla_groups = (
    {
        "scylla": scylla_configs[0].node_group.model_copy(
            update={"taints": [config.Taint(key="haul.dev/scylla")]}
        )
    }
    if scylla_configs
    else {}
)
eks = EksCluster(
    name,
    EksClusterArgs(
        name=name,
        region=stack.region,
        config=stack.eks,
        vpc_id=network.vpc_id,
        private_subnet_ids=network.private_subnet_ids,
        extra_node_groups=scylla_groups,
        tags=tags,
    ),
)
on_k8s = pulumi.ResourceOptions(providers={"kubernetes": eks.provider})
addons = ClusterAddons(
    name,
    ClusterAddonsArgs(config=stack.addons, scrape_interval=stack.observability.scrape_interval),
    opts=on_k8s,
)
image = artifacts.repository.repository_url.apply(lambda url: f"{url}:{stack.apps.image_tag}")
previous_name = stack.previous_state_stack or (
    f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}"
)
deployed = pulumi.StackReference(f"{name}-deployed", stack_name=previous_name).get_output(
    "clusters"
)
loadgen = stack.loadgen  # Locust on EKS, when enabled
client_namespaces = [*stack.apps.namespaces.values(), "keda"]
if loadgen.enabled:
    client_namespaces.append(loadgen.namespace)

# The app database lives on one cluster's RDS instance; its budget counts the app pods and
# the load generator's workers (parcel_ingest claims idempotency rows there).
app_db_cluster = stack.apps.app_database_cluster(stack.clusters)
app_connections = stack.apps.db_connections_per_pod * (
    len(stack.apps.clusters)  # one Deployment per group and cluster
    * sum(g.max_replicas for g in stack.apps.worker_groups)
    + (loadgen.workers if loadgen.enabled else 0)
    + (stack.apps.api.replicas if stack.apps.api.enabled else 0)
)
frontends, databases, states, releases, rds, temporals = {}, {}, {}, [], {}, {}
for cluster in stack.clusters:
    pg = PostgresPersistence(
        f"{name}-{cluster.name}",
        PostgresPersistenceArgs(
            name=f"{name}-{cluster.name}",
            config=cluster.postgres,
            prod=stack.prod,
            vpc_id=network.vpc_id,
            subnet_ids=network.private_subnet_ids,
            client_security_group_ids=[eks.node_security_group_id],
            force_ssl=all(s.tls.enabled for s in cluster.postgres_stores),
            clusters=[cluster.name],
            app_connections=app_connections if cluster.name == app_db_cluster else 0,
            tags=tags,
        ),
    )
    rds[cluster.name] = pg
    # The guardrails need only the deployed state, so they run at preview even while the
    # database address is still unknown; everything built from the spec waits for them.
    guard = deployed.apply(
        lambda deployed_clusters, cluster=cluster: guardrails.check_cluster(
            cluster.spec, deployed_clusters
        )
    )
    spec = pulumi.Output.all(guard, pg.address).apply(
        lambda args: clusterspec.deployed_spec(args[0], args[1])
    )
    scylla = None
    if cluster.scylla is not None and cluster.cql_store is not None:
        scylla = ScyllaPersistence(
            f"{name}-{cluster.name}",
            ScyllaPersistenceArgs(
                name=cluster.name,
                config=cluster.scylla,
                availability_zones=stack.network.availability_zones,
                store=cluster.cql_store,
                spec=spec,
                image=image,
                depends_on=addons.releases,
            ),
            opts=on_k8s,
        )
    web_secret = None
    if cluster.web.oidc is not None:
        web_secret = aws.secretsmanager.get_secret_version_output(
            secret_id=cluster.web.oidc.client_secret_arn
        ).secret_string
    temporal = TemporalCluster(
        f"{name}-{cluster.name}",
        TemporalClusterArgs(
            cluster=cluster,
            prod=stack.prod,
            spec=spec,
            db_password=pg.password.result,
            rds_ca_pem=rds_ca_pem,
            rds_ca_mount_path=stack.tls.rds_ca_mount_path,
            scylla_ca_pem=scylla.ca_pem if scylla else None,
            scylla_password=scylla.cql_password if scylla else None,
            scylla_client_cert=scylla.client_cert if scylla else None,
            scylla_client_key=scylla.client_key if scylla else None,
            web_client_secret=web_secret,
            client_namespaces=client_namespaces,
            app_namespace=stack.apps.worker_groups[0].namespace,
            metrics_readers=[loadgen.namespace] if loadgen.enabled else [],
            depends_on=[*addons.releases, pg, *([scylla.bootstrap] if scylla else [])],
        ),
        opts=on_k8s,
    )
    releases += [temporal.release, temporal.namespace_setup]
    temporals[cluster.name] = temporal
    frontends[cluster.name] = temporal.frontend_address
    databases[cluster.name] = {"postgres": pg.address, "scylla": scylla.hosts if scylla else []}
    states[cluster.name] = spec.apply(guardrails.deployed_state)

Observability(
    name,
    ObservabilityArgs(
        otlp_endpoint=stack.observability.otlp_endpoint,
        scrape_interval=stack.observability.scrape_interval,
        app_namespaces=list(stack.apps.namespaces.values()),
    ),
    opts=pulumi.ResourceOptions(providers={"kubernetes": eks.provider}, depends_on=addons.releases),
)
app_db = rds[app_db_cluster]
# The app's own roles on its database, made where the master password already lives.
roles = AppDatabaseRoles(
    f"{name}-appdb",
    AppDatabaseRolesArgs(
        namespace=app_db_cluster,
        master_secret=clusterspec.password_secret(app_db_cluster),
        ca_config_map="rds-ca-bundle",
        ca_file=stack.tls.rds_ca_mount_path.rsplit("/", 1)[1],
        host=app_db.address,
    ),
    opts=pulumi.ResourceOptions(
        providers={"kubernetes": eks.provider}, depends_on=[temporals[app_db_cluster].release]
    ),
)


def role_url(user: str, password: pulumi.Output) -> pulumi.Output:
    return pulumi.Output.secret(
        pulumi.Output.all(password, app_db.address).apply(
            lambda a: app_database_url(user, a[0], a[1], RDS_CA_PATH)
        )
    )


database_url = role_url(APP_USER, roles.app_password)
# One envconfig profile per apps cluster, for the workers and the load generator alike.


def temporal_profile(c: str) -> TemporalProfile:
    """A deployed cluster's in-cluster frontend, or an external one (Temporal Cloud) as given."""
    ext = stack.apps.external(c)
    if ext is not None:
        return TemporalProfile(
            cluster=c,
            address=ext.address,
            namespace=ext.namespace,
            mtls=True,
            secret=ext.secret_name,
            server_ca=False,
        )
    return TemporalProfile(
        cluster=c,
        address=frontend_address(c),
        namespace=stack.apps.worker_groups[0].namespace,
        mtls=stack.cluster(c).mtls,
        server_name=f"{c}-frontend",
    )


profiles = [temporal_profile(c) for c in stack.apps.clusters]
deployed_apps_clusters = [c for c in stack.apps.clusters if stack.apps.external(c) is None]
client_issuers = {c: issuer_name(c) for c in deployed_apps_clusters if stack.cluster(c).mtls}
# The worker role's JWT per deployed mTLS cluster: the authorizer's answer to "who is this caller".
client_tokens = {
    c: temporals[c].tokens["worker"] for c in deployed_apps_clusters if stack.cluster(c).mtls
}
after_clusters = pulumi.ResourceOptions(
    providers={"kubernetes": eks.provider}, depends_on=[*addons.releases, *releases]
)
workers = Workers(
    f"{name}-workers",
    WorkersArgs(
        role="worker",
        namespace=stack.apps.namespaces["worker"],
        groups=stack.apps.worker_groups,
        image=image,
        profiles=profiles,
        bucket=artifacts.bucket.bucket,
        bucket_policy_arn=artifacts.access_policy.arn,
        database_url=database_url,
        migrate_database_url=role_url(MIGRATE_USER, roles.migrate_password),
        rds_ca_pem=rds_ca_pem,
        oidc_provider_arn=eks.oidc_provider.arn,
        oidc_issuer_url=eks.oidc_provider.url,
        keda=stack.apps.keda and stack.addons.keda,
        client_issuers=client_issuers,
        client_tokens=client_tokens,
        tags=tags,
    ),
    # Workers come last: after the clusters they connect to and their namespaces exist, and
    # after their database roles.
    opts=pulumi.ResourceOptions(
        providers={"kubernetes": eks.provider},
        depends_on=[*addons.releases, *releases, roles.job],
    ),
)
if stack.apps.api.enabled:
    # The failure inbox, beside the workers: their database Secret, temporal.toml and client
    # certificates are its own, so it comes after them.
    api = FailureApi(
        f"{name}-api",
        FailureApiArgs(
            config=stack.apps.api,
            namespace=stack.apps.namespaces["worker"],
            image=image,
            profiles=profiles,
            temporal_namespace=stack.apps.worker_groups[0].namespace,
            temporal_toml=workers.temporal_toml,
        ),
        opts=pulumi.ResourceOptions(providers={"kubernetes": eks.provider}, depends_on=[workers]),
    )
    pulumi.export("apiUrl", api.url)
    pulumi.export("apiToken", pulumi.Output.secret(api.token.result))
if loadgen.enabled:
    LoadGenerator(
        f"{name}-loadgen",
        LoadGeneratorArgs(
            config=loadgen,
            image=image,
            profiles=profiles,
            metrics_url=frontend_metrics_url(deployed_apps_clusters[0]),
            client_issuers=client_issuers,
            client_tokens=client_tokens,
            tolerations=[
                {"key": t.key, "operator": "Equal", "value": t.value, "effect": t.k8s_effect}
                for t in stack.eks.node_groups[loadgen.node_group].taints
            ],
            database_url=database_url,
            rds_ca_pem=rds_ca_pem,
            bucket=artifacts.bucket.bucket,
            bucket_policy_arn=artifacts.loadtest_policy.arn,
            oidc_provider_arn=eks.oidc_provider.arn,
            oidc_issuer_url=eks.oidc_provider.url,
            tags=tags,
        ),
        opts=after_clusters,
    )

pulumi.export("frontendAddresses", frontends)
pulumi.export("databaseEndpoints", databases)
pulumi.export("ecrRepositoryUrl", artifacts.repository.repository_url)
pulumi.export("claimCheckBucket", artifacts.bucket.bucket)
pulumi.export("kubeconfig", eks.kubeconfig)
pulumi.export("clusters", states)

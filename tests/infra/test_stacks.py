"""Each committed stack under Pulumi mocks: RDS, security groups, Helm values, workers, IRSA."""

from __future__ import annotations

import json

import pytest
from infra_harness import STACKS, stack_file
from temporalio.envconfig import ClientConfig

from app.stack.spec_render import render_helm_values

RDS = "aws:rds/instance:Instance"
PARAMS = "aws:rds/parameterGroup:ParameterGroup"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
ROLE = "aws:iam/role:Role"
POLICY = "aws:iam/policy:Policy"


def clusters(stack: str) -> list[dict]:
    return stack_file(stack)["haul:clusters"]


def leaves(tree, path=()):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from leaves(v, (*path, k))
    else:
        yield path, tree


def at(tree, path):
    for part in path:
        tree = tree[part]
    return tree


@pytest.mark.parametrize("stack", STACKS)
def test_rds_settings(stacks, stack):
    run = stacks[stack]
    prod = stack_file(stack)["haul:environment"] == "prod"
    instances = run.of_type(RDS)
    assert len(instances) == len(clusters(stack))
    for cluster in clusters(stack):
        inst = next(r for r in instances if r["name"].endswith(cluster["name"]))
        i = inst["inputs"]
        cfg = cluster["postgres"]
        assert i["engine"] == "postgres"
        assert int(i["engineVersion"].split(".")[0]) >= 15  # RDS 15+ forces SSL
        assert i["publiclyAccessible"] is False
        assert i["storageEncrypted"] is True and i["kmsKeyId"].startswith("arn:")
        assert i["multiAz"] is cfg["multiAz"]
        assert i["deletionProtection"] is cfg["deletionProtection"]
        assert i["instanceClass"] == cfg["instanceClass"]
        assert i["dbName"] == "haul"  # RDS makes one database; the chart's job makes the rest
        if prod:
            assert i["multiAz"] and i["deletionProtection"]
            assert i["skipFinalSnapshot"] is False and i["finalSnapshotIdentifier"]
        else:
            assert i["skipFinalSnapshot"] is True
        group = run.one(PARAMS, name=i["parameterGroupName"])["inputs"]
        params = {p["name"]: p["value"] for p in group["parameters"]}
        assert params["rds.force_ssl"] == "1"
        assert params["max_connections"] == str(cfg["maxConnections"])
        assert float(params["autovacuum_vacuum_scale_factor"]) <= 0.05
        assert group["family"] == f"postgres{i['engineVersion'].split('.')[0]}"


@pytest.mark.parametrize("stack", STACKS)
def test_rds_password_comes_from_random_and_secrets_manager(stacks, stack):
    run = stacks[stack]
    passwords = [
        p
        for p in run.of_type("random:index/randomPassword:RandomPassword")
        if p["name"].endswith("-master")
    ]
    versions = run.of_type("aws:secretsmanager/secretVersion:SecretVersion")
    assert len(passwords) == len(versions) == len(clusters(stack))
    by_name = {v["name"]: v for v in versions}
    for inst in run.of_type(RDS):
        version = by_name[f"{inst['name']}-master"]
        stored = json.loads(version["inputs"]["secretString"])
        assert stored["password"] == inst["inputs"]["password"]
        assert stored["host"].endswith(".rds.amazonaws.com")


@pytest.mark.parametrize("stack", STACKS)
def test_security_groups_admit_only_the_cluster(stacks, stack):
    run = stacks[stack]
    eks = run.of_type("aws:eks/cluster:Cluster")[0]
    db_groups = run.of_type("aws:ec2/securityGroup:SecurityGroup")
    assert db_groups and all(not g["inputs"].get("ingress") for g in db_groups)
    rules = run.of_type(INGRESS)
    assert len(rules) == len(db_groups)
    for rule in rules:
        r = rule["inputs"]
        assert (r["fromPort"], r["toPort"], r["ipProtocol"]) == (5432, 5432, "tcp")
        assert r["referencedSecurityGroupId"] == f"sg-{eks['name']}-cluster"
        assert "cidrIpv4" not in r and "cidrIpv6" not in r


@pytest.mark.parametrize("stack", STACKS)
def test_helm_values_are_what_clusterspec_renders(stacks, stack):
    import clusterspec
    import config

    run = stacks[stack]
    doc = stack_file(stack)
    stack_cfg = config.parse(doc)
    for cluster in stack_cfg.clusters:
        release = run.temporal_release(cluster.name)["inputs"]
        assert release["version"] == __import__("app.versions").versions.TEMPORAL_HELM_CHART
        host = run.outputs["databaseEndpoints"][cluster.name]["postgres"]
        assert host.endswith(".rds.amazonaws.com")
        scylla = run.outputs["databaseEndpoints"][cluster.name]["scylla"] or None
        if cluster.backend == "scylla":
            assert scylla == [f"scylla-client.{cluster.name}-scylla.svc.cluster.local"]
        spec = clusterspec.deployed_spec(cluster.spec, host)
        expected = render_helm_values(spec)
        values = release["values"]
        checked = 0
        for path, value in leaves(expected):
            assert at(values, path) == value, f"{cluster.name}: {'.'.join(path)}"
            checked += 1
        assert checked > 20
        # What infra fills in from the stack and the deployed database:
        stores = values["server"]["config"]["persistence"]["datastores"]
        vis = stores["visibility"]["sql"]
        assert vis["connectAddr"] == f"{host}:5432"
        assert vis["tls"] == {
            "enabled": True,
            "enableHostVerification": True,
            "caFile": "/etc/temporal/rds-ca/global-bundle.pem",
            "serverName": host,
        }
        assert vis["existingSecret"] == f"{cluster.name}-postgres-credentials"
        assert "password" not in vis
        shards = doc["haul:clusters"][stack_cfg.clusters.index(cluster)]["spec"]
        assert (
            values["server"]["config"]["persistence"]["numHistoryShards"]
            == (shards["numHistoryShards"])
        )
        if cluster.backend == "scylla":
            cql = stores["default"]["cassandra"]
            assert cql["createDatabase"] is False
            assert cql["consistency"]["default"] == {
                "consistency": "LOCAL_QUORUM",
                "serialConsistency": "LOCAL_SERIAL",
            }
            assert cql["tls"]["enabled"] is True
        else:
            assert stores["default"]["sql"]["createDatabase"] is True
        assert vis["createDatabase"] is True


@pytest.mark.parametrize("stack", STACKS)
def test_deployment_values(stacks, stack):
    run = stacks[stack]
    prod = stack_file(stack)["haul:environment"] == "prod"
    for cluster in clusters(stack):
        values = run.temporal_release(cluster["name"])["inputs"]["values"]
        server = values["server"]
        for svc, conf in cluster["services"].items():
            assert server[svc]["replicaCount"] == conf["replicas"]
            assert server[svc]["podDisruptionBudget"] == {"maxUnavailable": 1}
            assert server[svc]["resources"]["limits"]["memory"] == conf["resources"]["memoryLimit"]
        svc = server["frontend"]["service"]
        assert svc["type"] == "LoadBalancer"
        assert svc["annotations"]["service.beta.kubernetes.io/aws-load-balancer-internal"] == "true"
        assert server["metrics"]["serviceMonitor"]["enabled"] is True
        assert values["admintools"]["enabled"] is (not prod and cluster.get("admintools", False))
        web = values["web"]
        if web["enabled"]:
            env = {e["name"]: e for e in web["additionalEnv"]}
            assert env["TEMPORAL_AUTH_ENABLED"]["value"] == "true"
            assert "value" not in env["TEMPORAL_AUTH_CLIENT_SECRET"]
        if cluster.get("mtls"):
            assert server["tls"]["frontend"]["requireClientAuth"] is True
            assert server["tls"]["internode"]["enabled"] is True


def test_release_waits_for_persistence_and_hooks(stacks):
    release = stacks["prod-scylla"].temporal_release("temporal-b")["inputs"]
    assert release["repositoryOpts"]["repo"] == "https://go.temporal.io/helm-charts"
    assert release["atomic"] is True and release["waitForJobs"] is True


def worker_toml(run) -> str:
    secret = run.one(
        "kubernetes:core/v1:Secret",
        metadata={"name": "temporal-client", "namespace": "haul-workers"},
    )
    return secret["inputs"]["stringData"]["temporal.toml"]


def test_worker_temporal_toml_one_cluster(stacks):
    text = worker_toml(stacks["dev"])
    config = ClientConfig.load(config_source=text, config_file_strict=True)
    assert set(config.profiles) == {"temporal-a"}
    profile = config.profiles["temporal-a"]
    assert profile.address == "temporal-a-frontend.temporal-a.svc.cluster.local:7233"
    assert profile.namespace == "haul"
    assert profile.tls is not None and profile.tls.disabled is True


def test_worker_temporal_toml_two_clusters(stacks):
    run = stacks["migration"]
    config = ClientConfig.load(config_source=worker_toml(run), config_file_strict=True)
    assert set(config.profiles) == {"temporal-a", "temporal-b"}
    for name, profile in config.profiles.items():
        assert profile.address == f"{name}-frontend.{name}.svc.cluster.local:7233"
        assert profile.tls.server_name == f"{name}-frontend"
        assert str(profile.tls.client_cert) == f"/etc/haul/tls/{name}/tls.crt"
    # One Deployment per group and cluster, each on its own profile.
    profiles = {}
    workers = [
        d
        for d in run.of_type("kubernetes:apps/v1:Deployment")
        if d["inputs"]["metadata"]["labels"]["haul.dev/role"] == "worker"
    ]
    for dep in workers:
        container = dep["inputs"]["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["TEMPORAL_CONFIG_FILE"] == "/etc/haul/client/temporal.toml"
        labels = dep["inputs"]["metadata"]["labels"]
        assert labels["haul.dev/temporal-cluster"] == env["TEMPORAL_PROFILE"]
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert f"/etc/haul/tls/{env['TEMPORAL_PROFILE']}" in mounts
        profiles.setdefault(labels["haul.dev/worker-group"], set()).add(env["TEMPORAL_PROFILE"])
    assert profiles == {"ingest": {"temporal-a", "temporal-b"}}


@pytest.mark.parametrize("stack", STACKS)
def test_irsa_policies_are_scoped_to_the_bucket(stacks, stack):
    run = stacks[stack]
    bucket = run.outputs["claimCheckBucket"]
    arn = f"arn:aws:s3:::{bucket}"
    policy = run.one(
        POLICY, description="Read and write claim-check payloads in the haul bucket only"
    )
    doc = json.loads(policy["inputs"]["policy"])
    resources = {
        r
        for s in doc["Statement"]
        for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])
    }
    assert resources == {arn, f"{arn}/*"}
    actions = {a for s in doc["Statement"] for a in s["Action"]}
    assert not any("*" in a for a in actions)
    assert actions <= {
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:AbortMultipartUpload",
        "s3:ListBucket",
    }
    groups = stack_file(stack)["haul:apps"]["workerGroups"]
    irsa = [
        r for r in run.of_type(ROLE) if r["name"].endswith("-irsa") and "-workers-" in r["name"]
    ]
    assert len(irsa) == len(groups)
    for group in groups:
        role = next(r for r in irsa if r["name"].endswith(f"-workers-{group['name']}-irsa"))
        trust = json.loads(role["inputs"]["assumeRolePolicy"])["Statement"][0]
        subject = next(
            v for k, v in trust["Condition"]["StringEquals"].items() if k.endswith(":sub")
        )
        assert subject == f"system:serviceaccount:haul-workers:worker-{group['name']}"
    attachments = [
        r
        for r in run.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        if r["name"].endswith("-claim-check") and "-workers-" in r["name"]
    ]
    assert len(attachments) == len(groups)
    assert {a["inputs"]["policyArn"] for a in attachments} == {policy["arn"]}


@pytest.mark.parametrize("stack", STACKS)
def test_workers(stacks, stack):
    run = stacks[stack]
    doc = stack_file(stack)
    groups = doc["haul:apps"]["workerGroups"]
    clusters = doc["haul:apps"]["clusters"]
    deployments = {
        d["inputs"]["metadata"]["name"]: d["inputs"]
        for d in run.of_type("kubernetes:apps/v1:Deployment")
        if d["inputs"]["metadata"]["labels"]["haul.dev/role"] == "worker"
    }
    assert set(deployments) == {f"worker-{g['name']}-{c}" for g in groups for c in clusters}
    for group in groups:
        for cluster in clusters:
            dep = deployments[f"worker-{group['name']}-{cluster}"]
            pod = dep["spec"]["template"]["spec"]
            c = pod["containers"][0]
            assert c["image"] == f"{run.outputs['ecrRepositoryUrl']}:0.1.0"
            assert c["args"] == ["worker"]
            assert pod["serviceAccountName"] == f"worker-{group['name']}"
            assert pod["terminationGracePeriodSeconds"] > group["maxActivityGraceSeconds"]
            assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert c["readinessProbe"]["httpGet"]["port"] == "health"
            assert c["ports"][0]["containerPort"] == 9090
            assert c["resources"]["limits"]["cpu"] == group["resources"]["cpuLimit"]
            env = {e["name"]: e.get("value") for e in c["env"]}
            assert env["TEMPORAL_PROFILE"] == cluster
            assert env["TEMPORAL_NAMESPACE"] == group["namespace"]
            assert env["HAUL_TASK_QUEUES"] == ",".join(group["taskQueues"])
            assert env["HAUL_BLOB_DIR"] == f"s3://{run.outputs['claimCheckBucket']}/claim-check"
            assert env["HAUL_WORKER_HEALTH_HOST"] == "0.0.0.0"
            url = next(e for e in c["env"] if e["name"] == "HAUL_DATABASE_URL")
            assert url["valueFrom"]["secretKeyRef"] == {"name": "haul-database", "key": "url"}
            assert "value" not in url


@pytest.mark.parametrize("stack", STACKS)
def test_outputs(stacks, stack):
    out = stacks[stack].outputs
    names = [c["name"] for c in clusters(stack)]
    assert set(out["frontendAddresses"]) == set(names)
    assert set(out["databaseEndpoints"]) == set(names)
    assert out["ecrRepositoryUrl"].endswith("/haul")
    user = json.loads(out["kubeconfig"])["users"][0]["user"]["exec"]
    assert user["command"] == "aws"
    assert user["args"][-2:] == ["--region", "us-east-1"]
    assert stacks[stack].secret_outputs == ["apiToken", "kubeconfig"]
    for c in clusters(stack):
        assert out["clusters"][c["name"]]["numHistoryShards"] == c["spec"]["numHistoryShards"]


def test_eks_uses_pulumi_aws_resources(stacks):
    run = stacks["prod-scylla"]
    cluster = run.of_type("aws:eks/cluster:Cluster")[0]["inputs"]
    assert cluster["version"] == __import__("app.versions").versions.EKS_KUBERNETES
    assert cluster["accessConfig"]["authenticationMode"] == "API"
    assert cluster["vpcConfig"]["endpointPublicAccess"] is False
    groups = {
        g["name"].rsplit("-", 1)[-1]: g["inputs"]
        for g in run.of_type("aws:eks/nodeGroup:NodeGroup")
    }
    assert set(groups) == {"system", "temporal", "workers", "scylla"}
    assert groups["scylla"]["instanceTypes"][0].startswith("i4i")
    assert len(groups["scylla"]["subnetIds"]) == 3
    addons = {a["inputs"]["addonName"]: a["inputs"] for a in run.of_type("aws:eks/addon:Addon")}
    assert {"vpc-cni", "coredns", "kube-proxy", "aws-ebs-csi-driver"} <= set(addons)
    # The CNI's network-policy agent: without it every NetworkPolicy is inert.
    cni = json.loads(addons["vpc-cni"]["configurationValues"])
    assert cni == {"enableNetworkPolicy": "true"}
    assert run.of_type("aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    assert run.of_type("aws:eks/accessEntry:AccessEntry")
    charts = {
        r["inputs"]["chart"]: r["inputs"]["version"]
        for r in run.of_type("kubernetes:helm.sh/v3:Release")
    }
    versions = __import__("app.versions").versions
    assert charts["keda"] == versions.KEDA_CHART
    assert charts["cert-manager"] == versions.CERT_MANAGER_CHART
    assert charts["kube-prometheus-stack"] == versions.KUBE_PROMETHEUS_STACK_CHART
    assert charts["scylla-operator"] == versions.SCYLLA_OPERATOR_CHART


def test_dev_is_single_zone_for_nodes_and_nat(stacks):
    run = stacks["dev"]
    assert len(run.of_type("aws:ec2/natGateway:NatGateway")) == 1
    for group in run.of_type("aws:eks/nodeGroup:NodeGroup"):
        assert len(group["inputs"]["subnetIds"]) == 1
    assert run.of_type(RDS)[0]["inputs"]["multiAz"] is False


@pytest.mark.parametrize("stack", STACKS)
def test_app_roles_are_made_where_the_master_password_lives(stacks, stack):
    from components.appdb import ROLES_SQL

    run = stacks[stack]
    doc = stack_file(stack)
    app_cluster = doc["haul:apps"].get("databaseCluster") or doc["haul:clusters"][0]["name"]
    job = run.one(
        "kubernetes:batch/v1:Job", metadata={"name": "haul-db-roles", "namespace": app_cluster}
    )
    (container,) = job["inputs"]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["PGUSER"] == "temporal" and env["PGDATABASE"] == "haul"
    assert env["PGPASSWORD"] == {
        "secretKeyRef": {"name": f"{app_cluster}-postgres-credentials", "key": "password"}
    }
    assert env["PGSSLMODE"] == "verify-full"
    assert env["PGHOST"] == run.outputs["databaseEndpoints"][app_cluster]["postgres"]
    assert ROLES_SQL in container["command"][-1]
    # No pod outside the Temporal namespace gets the master user: every URL names a role.
    for secret in run.of_type("kubernetes:core/v1:Secret"):
        url = (secret["inputs"].get("stringData") or {}).get("url", "")
        assert "://temporal:" not in url, secret["inputs"]["metadata"]


@pytest.mark.parametrize("stack", STACKS)
def test_app_database_and_migrations(stacks, stack):
    from urllib.parse import parse_qs, unquote, urlsplit

    run = stacks[stack]
    doc = stack_file(stack)
    app_cluster = doc["haul:apps"].get("databaseCluster") or doc["haul:clusters"][0]["name"]
    secret = run.one(
        "kubernetes:core/v1:Secret", metadata={"name": "haul-database", "namespace": "haul-workers"}
    )
    url = urlsplit(secret["inputs"]["stringData"]["url"])
    instance = next(r for r in run.of_type(RDS) if r["name"].endswith(app_cluster))
    assert url.hostname == run.outputs["databaseEndpoints"][app_cluster]["postgres"]
    # The app's own role, never the RDS master user, with its generated password.
    assert url.path == "/haul" and url.username == "haul_app"
    assert unquote(url.password) == f"mock-password-haul-{stack}-appdb-app"
    assert unquote(url.password) != instance["inputs"]["password"]
    query = parse_qs(url.query)
    assert query["sslmode"] == ["verify-full"]
    assert query["sslrootcert"] == ["/etc/haul/rds-ca/global-bundle.pem"]
    ca = run.one(
        "kubernetes:core/v1:ConfigMap",
        metadata={"name": "rds-ca-bundle", "namespace": "haul-workers"},
    )
    assert "BEGIN CERTIFICATE" in ca["inputs"]["data"]["global-bundle.pem"]
    job = run.one(
        "kubernetes:batch/v1:Job", metadata={"name": "haul-db-migrate", "namespace": "haul-workers"}
    )
    container = job["inputs"]["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["migrate"]
    assert container["image"] == f"{run.outputs['ecrRepositoryUrl']}:0.1.0"
    (url_env,) = container["env"]
    assert url_env["valueFrom"]["secretKeyRef"] == {"name": "haul-database-migrate", "key": "url"}
    migrate = run.one(
        "kubernetes:core/v1:Secret",
        metadata={"name": "haul-database-migrate", "namespace": "haul-workers"},
    )
    migrate_url = urlsplit(migrate["inputs"]["stringData"]["url"])
    assert migrate_url.username == "haul_migrate" and migrate_url.path == "/haul"
    assert unquote(migrate_url.password) == f"mock-password-haul-{stack}-appdb-migrate"
    params = next(
        p["inputs"] for p in run.of_type(PARAMS) if p["name"].endswith(f"{app_cluster}-params")
    )
    assert int(params["tags"]["haul.dev/app-connections"]) > 0

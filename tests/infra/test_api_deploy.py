"""`haul api` on EKS: a Deployment with a PDB behind a ClusterIP Service, its token from a
mounted Secret, the app database, and both clusters' profiles during a migration."""

from __future__ import annotations

import tomllib

import pytest
from infra_harness import STACKS, stack_file
from policies.rules import Res, evaluate

NS = "haul-workers"


def api_objects(run):
    def one(kind: str, name: str):
        found = [
            r["inputs"]
            for r in run.resources
            if r["type"].endswith(f":{kind}")
            and r["inputs"].get("metadata", {}).get("name") == name
            and r["inputs"]["metadata"].get("namespace") == NS
        ]
        assert len(found) == 1, f"{kind} {name}: {len(found)} found"
        return found[0]

    return {
        kind: one(kind, name)
        for kind, name in (
            ("Deployment", "haul-api"),
            ("Service", "haul-api"),
            ("PodDisruptionBudget", "haul-api"),
            ("Secret", "haul-api-token"),
            ("NetworkPolicy", "haul-api"),
            ("ServiceAccount", "haul-api"),
        )
    }


def env_of(container) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


@pytest.mark.parametrize("stack", STACKS)
def test_the_api_is_served_behind_a_cluster_ip_with_a_pdb(stacks, stack):
    objs = api_objects(stacks[stack])
    deployment = objs["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    # The image's `api` entrypoint runs `haul api --host 0.0.0.0 --port $HAUL_API_PORT`.
    assert container["args"] == ["api"]
    assert env_of(container)["HAUL_API_PORT"] == "8080"
    assert container["ports"] == [{"name": "http", "containerPort": 8080}]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["resources"]["limits"]["cpu"] and container["resources"]["limits"]["memory"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["automountServiceAccountToken"] is False
    selector = deployment["spec"]["selector"]["matchLabels"]
    service = objs["Service"]["spec"]
    assert service["type"] == "ClusterIP" and service["selector"] == selector
    assert service["ports"] == [{"name": "http", "port": 80, "targetPort": "http"}]
    pdb = objs["PodDisruptionBudget"]["spec"]
    assert pdb["selector"]["matchLabels"] == selector and pdb["maxUnavailable"] == 1
    # Outside dev, a drain never takes the inbox down.
    assert deployment["spec"]["replicas"] >= (1 if stack == "dev" else 2)
    policy = objs["NetworkPolicy"]["spec"]
    assert policy["podSelector"]["matchLabels"] == selector
    assert policy["ingress"] == [
        {"from": [{"podSelector": {}}], "ports": [{"protocol": "TCP", "port": 8080}]}
    ]
    assert stacks[stack].outputs["apiUrl"] == f"http://haul-api.{NS}.svc.cluster.local"


@pytest.mark.parametrize("stack", STACKS)
def test_the_token_is_a_mounted_secret_file_and_the_database_a_secret(stacks, stack):
    run = stacks[stack]
    objs = api_objects(run)
    pod = objs["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = env_of(container)
    assert "HAUL_API_TOKEN" not in env  # never in the environment, where `ps e` shows it
    token_file = env["HAUL_API_TOKEN_FILE"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounted = [m for m in container["volumeMounts"] if token_file.startswith(m["mountPath"] + "/")]
    assert len(mounted) == 1 and mounted[0]["readOnly"] is True
    source = volumes[mounted[0]["name"]]["secret"]
    assert source["secretName"] == "haul-api-token"
    assert source["items"] == [
        {"key": "token", "path": token_file.removeprefix(mounted[0]["mountPath"] + "/")}
    ]
    generated = objs["Secret"]["stringData"]["token"]
    assert generated.startswith("mock-password-")  # pulumi-random's, not a literal
    assert "apiToken" in run.secret_outputs
    assert env["HAUL_DATABASE_URL"] == {"secretKeyRef": {"name": "haul-database", "key": "url"}}
    # The database URL's sslrootcert: the RDS CA bundle the workers mount too.
    assert "rds-ca" in volumes and volumes["rds-ca"]["configMap"] == {"name": "rds-ca-bundle"}


def test_during_a_migration_it_reads_both_clusters_and_follows_the_state(stacks):
    run = stacks["migration"]
    pod = api_objects(run)["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = env_of(container)
    first, second = stack_file("migration")["haul:apps"]["clusters"]
    assert (env["HAUL_MIGRATION"], env["TEMPORAL_PROFILE"]) == ("true", first)
    secret = run.one(
        "kubernetes:core/v1:Secret", metadata={"name": "temporal-client", "namespace": NS}
    )["inputs"]
    toml = tomllib.loads(secret["stringData"]["temporal.toml"])
    assert set(toml["profile"]) == {first, second}
    assert env["TEMPORAL_CONFIG_FILE"] == "/etc/haul/client/temporal.toml"
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert volumes[mounts["/etc/haul/client"]]["secret"]["secretName"] == "temporal-client"
    # Each profile's client certificate sits where that profile points.
    for cluster in (first, second):
        tls = toml["profile"][cluster]["tls"]
        cert_dir = tls["client_cert_path"].rsplit("/", 1)[0]
        assert volumes[mounts[cert_dir]]["secret"] == {"secretName": f"{cluster}-client-tls"}


@pytest.mark.parametrize("stack", ["dev", "prod-postgres"])
def test_with_one_cluster_it_follows_no_migration(stacks, stack):
    pod = api_objects(stacks[stack])["Deployment"]["spec"]["template"]["spec"]
    env = env_of(pod["containers"][0])
    (cluster,) = stack_file(stack)["haul:apps"]["clusters"]
    assert (env["HAUL_MIGRATION"], env["TEMPORAL_PROFILE"]) == ("false", cluster)
    # Behind an mTLS frontend's authorizer it calls Temporal (redrives) as the worker role: the
    # token is its profile's api_key, in the temporal.toml Secret it shares with the workers.
    mtls = stack_file(stack)["haul:clusters"][0].get("mtls", False)
    assert "TEMPORAL_API_KEY" not in env
    secret = stacks[stack].one(
        "kubernetes:core/v1:Secret", metadata={"name": "temporal-client", "namespace": NS}
    )["inputs"]
    profile = tomllib.loads(secret["stringData"]["temporal.toml"])["profile"][cluster]
    assert bool(profile.get("api_key")) is bool(mtls)


def test_its_pods_count_in_the_app_database_connection_budget(run_stack, stacks):
    def app_connections(run) -> int:
        (group,) = [
            r
            for r in run.of_type("aws:rds/parameterGroup:ParameterGroup")
            if int(r["inputs"]["tags"].get("haul.dev/app-connections", 0))
        ]
        return int(group["inputs"]["tags"]["haul.dev/app-connections"])

    bigger = run_stack("prod-postgres", overrides={"haul:apps.api": {"replicas": 5}})
    assert bigger.ok, bigger.error
    per_pod = stack_file("prod-postgres")["haul:apps"].get("dbConnectionsPerPod", 10)
    assert app_connections(bigger) - app_connections(stacks["prod-postgres"]) == 3 * per_pod


def test_an_api_without_limits_is_stopped_by_the_pack_and_it_can_be_turned_off(run_stack):
    no_limits = run_stack(
        "dev",
        overrides={
            "haul:apps.api": {"resources": {"cpuRequest": "100m", "memoryRequest": "128Mi"}}
        },
    )
    assert no_limits.ok, no_limits.error
    found = evaluate([Res(r["type"], r["name"], r["inputs"]) for r in no_limits.resources])
    assert found["pdb-and-limits"] == [
        "Deployment haul-dev-api container api has no cpu/memory limits"
    ]
    off = run_stack("dev", overrides={"haul:apps.api": {"enabled": False}})
    assert off.ok, off.error
    assert not [r for r in off.resources if "haul-api" in str(r["inputs"].get("metadata"))]
    assert "apiUrl" not in off.outputs

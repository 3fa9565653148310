"""Locust on EKS (infra/components/loadgen.py): what the stacks declare, that the pods run the
commands and read the settings the real CLI has, and that bad config stops the program.

The distributed run itself (a master and `haul loadtest locust-worker` processes, settings
from the master, files sent home) runs for real in tests/loadtest.
"""

from __future__ import annotations

import json
import tomllib
from urllib.parse import urlsplit

import pytest
import typer
from infra_harness import stack_file
from test_policies import violations

from app.cli.main import app as haul_cli

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
NAMESPACE = "haul-loadtest"
ON = {"haul:loadgen": {"enabled": True, "workers": 3}}


def in_namespace(run, kind: str) -> dict[str, dict]:
    return {
        r["inputs"]["metadata"]["name"]: r["inputs"]
        for r in run.resources
        if r["type"].startswith("kubernetes:")
        and r["inputs"].get("kind") == kind
        and r["inputs"]["metadata"].get("namespace") == NAMESPACE
    }


def container(deployment: dict) -> dict:
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    return c


def env(deployment: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(deployment)["env"] if "value" in e}


def secret_env(deployment: dict) -> dict[str, dict]:
    return {e["name"]: e["valueFrom"] for e in container(deployment)["env"] if "valueFrom" in e}


def loadtest_option_envvars(command: str) -> set[str]:
    """The environment variables `haul loadtest COMMAND` reads its options from."""
    group = typer.main.get_command(haul_cli).commands["loadtest"]  # type: ignore[attr-defined]
    params = group.commands[command].params
    return {p.envvar for p in params if isinstance(p.envvar, str)}


def test_dev_stack_runs_a_master_console_and_workers_that_join_it(stacks):
    run = stacks["dev"]
    assert stack_file("dev")["haul:loadgen"]["enabled"]
    deployments = in_namespace(run, "Deployment")
    master, workers = deployments["haul-loadgen-master"], deployments["haul-loadgen-worker"]
    assert master["spec"]["replicas"] == 1
    assert workers["spec"]["replicas"] == stack_file("dev")["haul:loadgen"]["workers"]
    assert container(workers)["args"] == ["haul", "loadtest", "locust-worker"]

    # Workers reach the master through its Service, on the port the master binds.
    (service,) = in_namespace(run, "Service").values()
    assert service["metadata"]["name"] == env(workers)["HAUL_LT_MASTER_HOST"]
    assert service["spec"]["selector"] == master["spec"]["selector"]["matchLabels"]
    (port,) = service["spec"]["ports"]
    assert port["port"] == int(env(workers)["HAUL_LT_MASTER_PORT"]) == 5557
    assert {"name": "locust", "containerPort": 5557} in container(master)["ports"]
    assert env(master)["HAUL_LT_MASTER_BIND_HOST"] == "0.0.0.0"

    # The console targets the first apps cluster and reads every frontend pod's counter.
    assert env(master)["HAUL_LT_TARGET"] == "temporal-a"
    url = urlsplit(env(master)["HAUL_LT_METRICS_URL"].removeprefix("dns+"))
    assert env(master)["HAUL_LT_METRICS_URL"].startswith("dns+http://")
    assert url.hostname == "temporal-a-frontend-headless.temporal-a.svc.cluster.local"
    assert url.port == 9090 and url.path == "/metrics"


def test_the_pods_settings_are_ones_the_cli_reads():
    """A renamed option or variable would leave the pods silently on defaults."""
    run_vars = loadtest_option_envvars("run")
    worker_vars = loadtest_option_envvars("locust-worker")
    assert {"HAUL_LT_TARGET", "HAUL_LT_METRICS_URL", "HAUL_LT_MASTER_BIND_HOST"} <= run_vars
    assert {"HAUL_LT_MASTER_HOST", "HAUL_LT_MASTER_PORT"} <= worker_vars


def test_pods_run_read_only_with_a_scratch_dir_and_the_clients_temporal_toml(stacks):
    run = stacks["dev"]
    toml_map = in_namespace(run, "Secret")["temporal-client"]
    profiles = tomllib.loads(toml_map["stringData"]["temporal.toml"])["profile"]
    assert (
        profiles["temporal-a"]["address"] == "temporal-a-frontend.temporal-a.svc.cluster.local:7233"
    )
    for name, dep in in_namespace(run, "Deployment").items():
        pod = dep["spec"]["template"]["spec"]
        c = container(dep)
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["serviceAccountName"] == name
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        empty = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
        assert mounts["/tmp"] in empty
        assert env(dep)["TEMPORAL_CONFIG_FILE"] == "/etc/haul/client/temporal.toml"
        assert "/etc/haul/client" in mounts
        assert c["resources"]["limits"]["cpu"] and c["resources"]["limits"]["memory"]
        assert pod["nodeSelector"] == {"haul.dev/node-group": "workers"}
        if name == "haul-loadgen-master":  # reports are written in the console pod
            assert mounts["/home/haul/loadtest-reports"] in empty
    pdbs = in_namespace(run, "PodDisruptionBudget")
    assert set(pdbs) == {"haul-loadgen-master", "haul-loadgen-worker"}


def test_workers_can_run_parcel_ingest_and_the_master_holds_no_credentials(stacks):
    """parcel_ingest users write to the claim-check bucket and claim rows in the app
    database, as the haul workers do; the console only drives them."""
    run = stacks["dev"]
    deployments = in_namespace(run, "Deployment")
    workers, master = deployments["haul-loadgen-worker"], deployments["haul-loadgen-master"]
    assert secret_env(workers) == {
        "HAUL_DATABASE_URL": {"secretKeyRef": {"name": "haul-database", "key": "url"}}
    }
    assert env(workers)["HAUL_BLOB_DIR"] == f"s3://{run.outputs['claimCheckBucket']}/claim-check"
    mounts = {m["mountPath"] for m in container(workers)["volumeMounts"]}
    assert "/etc/haul/rds-ca" in mounts  # the URL's sslrootcert
    secrets = in_namespace(run, "Secret")
    # The app database's URL, and the temporal.toml (profiles may carry tokens).
    assert set(secrets) == {"haul-database", "temporal-client"}
    secret = secrets["haul-database"]
    assert secret["stringData"]["url"].endswith("sslrootcert=/etc/haul/rds-ca/global-bundle.pem")
    assert "sslmode=verify-full" in secret["stringData"]["url"]
    assert urlsplit(secret["stringData"]["url"]).username == "haul_app"  # never the master
    accounts = in_namespace(run, "ServiceAccount")
    assert (
        "eks.amazonaws.com/role-arn" in accounts["haul-loadgen-worker"]["metadata"]["annotations"]
    )
    (role,) = [
        r for r in run.of_type("aws:iam/role:Role") if r["name"] == "haul-dev-loadgen-worker-irsa"
    ]
    trust = json.loads(role["inputs"]["assumeRolePolicy"])["Statement"][0]
    subjects = [v for k, v in trust["Condition"]["StringEquals"].items() if k.endswith(":sub")]
    assert subjects == ["system:serviceaccount:haul-loadtest:haul-loadgen-worker"]
    (attachment,) = [
        r
        for r in run.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        if r["name"] == "haul-dev-loadgen-worker-claim-check"
    ]
    assert attachment["inputs"]["role"] == role["inputs"].get("name", role["name"])
    policies = {p["arn"]: p for p in run.of_type("aws:iam/policy:Policy")}
    attached = policies[attachment["inputs"]["policyArn"]]
    # The load tests' own policy: put and read back claim-check payloads, never delete.
    bucket_arn = f"arn:aws:s3:::{run.outputs['claimCheckBucket']}"
    statements = json.loads(attached["inputs"]["policy"])["Statement"]
    actions = {a for s in statements for a in s["Action"]}
    assert actions == {"s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListBucket"}
    objects = next(s for s in statements if "s3:PutObject" in s["Action"])
    assert objects["Resource"] == f"{bucket_arn}/claim-check/*"
    listing = next(s for s in statements if s["Action"] == ["s3:ListBucket"])
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["claim-check/*"]}}
    workers_policy = run.one(
        "aws:iam/policy:Policy",
        description="Read and write claim-check payloads in the haul bucket only",
    )
    assert attached["arn"] != workers_policy["arn"]
    # The master: no database, no bucket, no role, no API token.
    assert secret_env(master) == {} and "HAUL_BLOB_DIR" not in env(master)
    assert "annotations" not in accounts["haul-loadgen-master"]["metadata"]
    assert accounts["haul-loadgen-master"]["automountServiceAccountToken"] is False


def test_only_the_load_generators_own_pods_reach_the_master(stacks):
    (policy,) = in_namespace(stacks["dev"], "NetworkPolicy").values()
    assert policy["spec"]["podSelector"] == {}
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": {"haul.dev/role": "loadgen"}}}]
    assert rule["ports"] == [{"protocol": "TCP", "port": 5557}]


@pytest.mark.parametrize("stack", ["prod-postgres", "prod-scylla", "migration"])
def test_off_unless_the_stack_turns_it_on(stacks, stack):
    assert not stack_file(stack).get("haul:loadgen", {}).get("enabled")
    assert in_namespace(stacks[stack], "Deployment") == {}
    assert not any(r["type"] == "haul:loadgen:LoadGenerator" for r in stacks[stack].resources)


def test_during_a_migration_it_can_reach_both_clusters_over_mtls(run_stack):
    run = run_stack("migration", overrides=ON)
    assert run.ok, run.error
    toml_map = in_namespace(run, "Secret")["temporal-client"]
    profiles = tomllib.loads(toml_map["stringData"]["temporal.toml"])["profile"]
    assert set(profiles) == {"temporal-a", "temporal-b"}
    for cluster, profile in profiles.items():
        assert profile["tls"]["client_cert_path"] == f"/etc/haul/tls/{cluster}/tls.crt"
    certs = [
        r["inputs"]
        for r in run.resources
        if r["type"].endswith(":Certificate") and r["inputs"]["metadata"]["namespace"] == NAMESPACE
    ]
    assert {c["spec"]["secretName"] for c in certs} == {
        "temporal-a-client-tls",
        "temporal-b-client-tls",
    }
    workers = in_namespace(run, "Deployment")["haul-loadgen-worker"]
    assert workers["spec"]["replicas"] == 3
    secrets = {
        v["secret"]["secretName"]
        for v in workers["spec"]["template"]["spec"]["volumes"]
        if "secret" in v
    }
    assert secrets == {"temporal-client", "temporal-a-client-tls", "temporal-b-client-tls"}
    # Each profile carries its own cluster's worker-role token.
    toml_secret = in_namespace(run, "Secret")["temporal-client"]["stringData"]["temporal.toml"]
    tokens = {c: p.get("api_key") for c, p in tomllib.loads(toml_secret)["profile"].items()}
    assert all(tokens.values()) and tokens["temporal-a"] != tokens["temporal-b"]
    # New work (and so the default load) goes to the first apps cluster.
    master = in_namespace(run, "Deployment")["haul-loadgen-master"]
    first = stack_file("migration")["haul:apps"]["clusters"][0]
    assert env(master)["HAUL_LT_TARGET"] == first


def test_a_tainted_node_group_is_tolerated(run_stack):
    run = run_stack("dev", overrides={"haul:loadgen.nodeGroup": "system"})
    assert run.ok, run.error
    for dep in in_namespace(run, "Deployment").values():
        pod = dep["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == {"haul.dev/node-group": "system"}
        assert pod["tolerations"] == [
            {
                "key": "CriticalAddonsOnly",
                "operator": "Equal",
                "value": "true",
                "effect": "NoSchedule",
            }
        ]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"haul:loadgen.nodeGroup": "gpu"}, "loadgen.nodeGroup gpu is not in eks.nodeGroups"),
        ({"haul:loadgen.namespace": "haul-workers"}, "loadgen.namespace haul-workers is already"),
        ({"haul:loadgen.workers": 0}, "haul:loadgen.workers"),
    ],
)
def test_bad_loadgen_config_stops_the_program(run_stack, override, message):
    run = run_stack("dev", overrides=override)
    assert not run.ok
    assert message in run.error
    assert not any(r["type"].startswith("kubernetes:") for r in run.resources)


def test_the_policy_pack_refuses_a_load_generator_without_limits(run_stack):
    unlimited = {"cpuRequest": "1", "memoryRequest": "512Mi"}
    run = run_stack("dev", overrides={"haul:loadgen.worker": unlimited})
    found = violations(run, "pdb-and-limits")
    assert found == ["Deployment haul-dev-loadgen-worker container locust has no cpu/memory limits"]

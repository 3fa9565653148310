"""Every core Kubernetes object the stacks build passes kubernetes-validate; custom resources
(which it has no schemas for) get asserts on the fields we rely on.

Schema version: kubernetes-validate ships schemas per Kubernetes minor (1.25 to 1.37 in the
pinned release), so the EKS pin in app/versions.py (1.33) is validated against exactly, in
strict mode (unknown fields are errors).
"""

from __future__ import annotations

import kubernetes_validate
import pytest
from infra_harness import STACKS, stack_file
from kubernetes_validate.utils import all_versions

from app import versions
from app.stack.spec import CassandraStore, load_spec
from app.stack.spec_render import render_helm_values

CORE_GROUPS = (
    "core/",
    "apps/",
    "batch/",
    "policy/",
    "networking.k8s.io/",
    "storage.k8s.io/",
    "autoscaling/",
    "rbac.authorization.k8s.io/",
)


def k8s_version() -> str:
    supported = all_versions()
    wanted = versions.EKS_KUBERNETES
    assert any(v.startswith(wanted) for v in supported), (
        f"kubernetes-validate has no schemas for EKS {wanted}; supported: {supported}"
    )
    return wanted


def core_objects(run):
    for r in run.resources:
        kind = r["type"].removeprefix("kubernetes:")
        if r["type"].startswith("kubernetes:") and kind.startswith(CORE_GROUPS):
            yield r


def custom(run, kind):
    return [r["inputs"] for r in run.resources if r["type"].endswith(f":{kind}")]


@pytest.mark.parametrize("stack", STACKS)
def test_core_objects_pass_kubernetes_validate(stacks, stack):
    version = k8s_version()
    objects = list(core_objects(stacks[stack]))
    kinds = {o["inputs"]["kind"] for o in objects}
    assert {
        "Namespace",
        "Secret",
        "ConfigMap",
        "Deployment",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "Service",
        "ServiceAccount",
    } <= kinds
    for obj in objects:
        kubernetes_validate.validate(obj["inputs"], version, strict=True)


def test_scylla_stack_validates_its_job_and_storage_class(stacks):
    kinds = {o["inputs"]["kind"] for o in core_objects(stacks["prod-scylla"])}
    assert {"Job", "StorageClass"} <= kinds


def test_hpa_fallback_validates_when_keda_is_off(run_stack):
    run = run_stack("dev", overrides={"haul:apps.keda": False})
    assert run.ok, run.error
    assert custom(run, "ScaledObject") == []
    (hpa,) = [o for o in core_objects(run) if o["inputs"]["kind"] == "HorizontalPodAutoscaler"]
    kubernetes_validate.validate(hpa["inputs"], k8s_version(), strict=True)
    assert hpa["inputs"]["spec"]["metrics"][0]["resource"]["name"] == "cpu"


def test_invalid_object_is_caught():
    bad = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {"replicas": "two", "selector": {}, "template": {}},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, k8s_version(), strict=True)


@pytest.mark.parametrize("stack", STACKS)
def test_scaled_objects(stacks, stack):
    run = stacks[stack]
    scaled = custom(run, "ScaledObject")
    # Every worker Deployment scales on its backlog; the load generator does not scale.
    deployments = {
        d["inputs"]["metadata"]["name"]
        for d in run.of_type("kubernetes:apps/v1:Deployment")
        if d["inputs"]["metadata"]["labels"]["haul.dev/role"] == "worker"
    }
    assert len(scaled) == len(deployments)
    for so in scaled:
        assert so["apiVersion"] == "keda.sh/v1alpha1"
        spec = so["spec"]
        assert spec["scaleTargetRef"]["name"] in deployments
        assert spec["scaleTargetRef"]["kind"] == "Deployment"
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
        for trigger in spec["triggers"]:
            assert trigger["type"] == "temporal"
            meta = trigger["metadata"]
            assert meta["endpoint"].endswith(":7233")
            assert meta["taskQueue"] and meta["namespace"] == "haul"
            assert int(meta["targetQueueSize"]) >= 1
            assert all(isinstance(v, str) for v in meta.values())  # KEDA metadata is strings


def test_scaled_objects_scale_each_cluster_on_its_own_backlog(stacks):
    scaled = custom(stacks["migration"], "ScaledObject")
    by_target = {
        so["spec"]["scaleTargetRef"]["name"]: {
            t["metadata"]["endpoint"] for t in so["spec"]["triggers"]
        }
        for so in scaled
    }
    for cluster in ("temporal-a", "temporal-b"):
        endpoint = f"{cluster}-frontend.{cluster}.svc.cluster.local:7233"
        targets = [t for t, endpoints in by_target.items() if endpoints == {endpoint}]
        assert targets == [f"worker-ingest-{cluster}"]
    for so in scaled:
        assert all(
            t["authenticationRef"]["name"] == so["metadata"]["name"] for t in so["spec"]["triggers"]
        )
    auths = {a["metadata"]["name"]: a for a in custom(stacks["migration"], "TriggerAuthentication")}
    assert set(auths) == set(by_target)
    for auth in auths.values():
        refs = {r["parameter"]: r for r in auth["spec"]["secretTargetRef"]}
        assert set(refs) == {"cert", "key", "ca", "apiKey"}
        # The certificate reaches the frontend; the worker role's token lets KEDA read backlog.
        assert refs["apiKey"]["name"].endswith("-temporal-token")


@pytest.mark.parametrize("stack", STACKS)
def test_service_monitor_and_rules(stacks, stack):
    run = stacks[stack]
    (sm,) = custom(run, "ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/part-of": "haul"}
    assert sm["spec"]["endpoints"][0]["port"] == "metrics"
    assert "haul-workers" in sm["spec"]["namespaceSelector"]["matchNames"]
    (rule,) = custom(run, "PrometheusRule")
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert set(alerts) == {
        "TemporalStartWorkflowLatencyHigh",
        "TemporalScheduleToStartLatencyHigh",
        "TemporalShardLockLatencyHigh",
        "TemporalResourceExhausted",
        "TemporalPersistenceErrors",
    }
    assert (
        'operation="StartWorkflowExecution"' in alerts["TemporalStartWorkflowLatencyHigh"]["expr"]
    )
    assert alerts["TemporalStartWorkflowLatencyHigh"]["expr"].endswith("> 0.150")
    assert alerts["TemporalScheduleToStartLatencyHigh"]["expr"].endswith("> 0.150")
    assert alerts["TemporalShardLockLatencyHigh"]["expr"].endswith("> 0.005")
    assert "service_errors_resource_exhausted" in alerts["TemporalResourceExhausted"]["expr"]
    assert "persistence_errors" in alerts["TemporalPersistenceErrors"]["expr"]


@pytest.mark.parametrize("stack", ["prod-scylla", "migration"])
def test_scylla_cluster(stacks, stack, tmp_path):
    run = stacks[stack]
    (sc,) = custom(run, "ScyllaCluster")
    assert sc["apiVersion"] == "scylla.scylladb.com/v1"
    assert sc["spec"]["version"] == versions.SCYLLA
    assert sc["spec"]["developerMode"] is False
    racks = sc["spec"]["datacenter"]["racks"]
    zones = [r["name"] for r in racks]
    assert zones == ["us-east-1a", "us-east-1b", "us-east-1c"]  # one rack per zone
    assert sum(r["members"] for r in racks) >= 3  # RF 3
    for rack in racks:
        terms = rack["placement"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        exprs = {e["key"]: e["values"] for e in terms["nodeSelectorTerms"][0]["matchExpressions"]}
        assert exprs["topology.kubernetes.io/zone"] == [rack["name"]]
        assert rack["resources"]["requests"] == rack["resources"]["limits"]  # guaranteed QoS
    (job,) = [
        o["inputs"]
        for o in core_objects(run)
        if o["inputs"]["kind"] == "Job"
        and o["inputs"]["metadata"]["name"] == "temporal-keyspace-bootstrap"
    ]
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    spec_file = "/etc/haul/spec/cluster.yaml"
    assert container["args"] == ["haul", "db", "scylla-bootstrap", "--spec", spec_file]
    assert not any(e["name"].startswith("HAUL_CQL") for e in container.get("env", []))
    # The Job reads the cluster's rendered ClusterSpec from a ConfigMap in its namespace ...
    namespace = sc["metadata"]["namespace"]
    (spec_map,) = [
        o["inputs"]
        for o in core_objects(run)
        if o["inputs"]["kind"] == "ConfigMap"
        and o["inputs"]["metadata"] == {"name": "temporal-cluster-spec", "namespace": namespace}
    ]
    path = tmp_path / "cluster.yaml"
    path.write_text(spec_map["data"]["cluster.yaml"])
    spec = load_spec(path)
    store = spec.persistence
    assert isinstance(store, CassandraStore)
    assert (store.kind, store.keyspace, store.datacenter) == ("scylla", "temporal", "us-east-1")
    assert store.replication_for(spec.environment) == {"us-east-1": 3}
    assert store.hosts == [f"scylla-client.{namespace}.svc.cluster.local"]
    assert sc["spec"]["datacenter"]["name"] == store.datacenter
    # ... the same spec the Temporal release is rendered from ...
    values = run.temporal_release(spec.name)["inputs"]["values"]
    for key, value in render_helm_values(spec)["server"]["config"]["persistence"].items():
        assert values["server"]["config"]["persistence"][key] == value, key
    # ... and its CA sits where the spec's tls.ca_file says.
    assert store.tls.enabled and store.tls.enable_host_verification and store.tls.ca_file
    ca_dir, ca_name = store.tls.ca_file.rsplit("/", 1)
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert volumes[mounts[ca_dir]]["secret"]["items"] == [{"key": "ca.crt", "path": ca_name}]
    assert volumes[mounts["/etc/haul/spec"]]["configMap"] == {"name": "temporal-cluster-spec"}


def test_scylla_release_waits_for_the_keyspace_bootstrap(stacks):
    run = stacks["prod-scylla"]
    release = run.temporal_release("temporal-b")["inputs"]
    cql = release["values"]["server"]["config"]["persistence"]["datastores"]["default"]["cassandra"]
    assert cql["createDatabase"] is False
    assert cql["keyspace"] == "temporal"


@pytest.mark.parametrize("stack", ["prod-postgres", "migration"])
def test_mtls_certificates(stacks, stack):
    run = stacks[stack]
    certs = custom(run, "Certificate")
    names = {c["metadata"]["name"] for c in certs}
    for cluster in ("temporal-a",):
        assert {
            f"{cluster}-ca",
            f"{cluster}-internode-tls",
            f"{cluster}-frontend-tls",
            f"{cluster}-client",
        } <= names
    for c in certs:
        assert c["apiVersion"] == "cert-manager.io/v1"
        assert c["spec"]["issuerRef"]["kind"] == "ClusterIssuer"
        assert c["spec"]["secretName"]
    internode = next(c for c in certs if c["metadata"]["name"].endswith("-internode-tls"))
    assert {"server auth", "client auth"} <= set(internode["spec"]["usages"])


@pytest.mark.parametrize("stack", STACKS)
def test_network_policies_admit_only_app_namespaces(stacks, stack):
    run = stacks[stack]
    policies = [o["inputs"] for o in core_objects(run) if o["inputs"]["kind"] == "NetworkPolicy"]
    frontend = [p for p in policies if p["metadata"]["name"] == "temporal-frontend-clients"]
    assert frontend
    # The load generator, where the stack has one, calls the frontend and reads its metrics.
    loadgen = ["haul-loadtest"] if stack_file(stack).get("haul:loadgen", {}).get("enabled") else []

    def admitted(rule):
        return {
            s["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
            for s in rule["from"]
        }

    for p in frontend:
        assert p["spec"]["podSelector"]["matchLabels"] == {
            "app.kubernetes.io/component": "frontend"
        }
        rule, *metrics = p["spec"]["ingress"]
        assert admitted(rule) == {"haul-workers", "keda", *loadgen}
        assert {port["port"] for port in rule["ports"]} == {7233, 7243}
        assert [admitted(m) for m in metrics] == [set(loadgen)] * len(loadgen)
        assert all(m["ports"] == [{"protocol": "TCP", "port": 9090}] for m in metrics)


@pytest.mark.parametrize("stack", STACKS)
def test_namespace_setup_job_registers_every_namespace_and_attribute(stacks, stack):
    run = stacks[stack]
    doc = stack_file(stack)
    for cluster in doc["haul:clusters"]:
        (job,) = [
            o["inputs"]
            for o in core_objects(run)
            if o["inputs"]["kind"] == "Job"
            and o["inputs"]["metadata"] == {"name": "namespace-setup", "namespace": cluster["name"]}
        ]
        container = job["spec"]["template"]["spec"]["containers"][0]
        assert (
            container["image"] == f"temporalio/admin-tools:{versions.TEMPORAL_ADMINTOOLS_IMAGE_TAG}"
        )
        script = container["command"][-1]
        for ns in cluster["spec"]["namespaces"]:
            assert f"namespace create --namespace {ns['name']} --retention" in script
            for attr, kind in ns["search_attributes"].items():
                assert f"--namespace {ns['name']} --name {attr} --type {kind}" in script
        env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
        assert env["TEMPORAL_ADDRESS"] == f"{cluster['name']}-frontend:7233"
        assert ("TEMPORAL_TLS_CLIENT_CERT_PATH" in env) is bool(cluster.get("mtls"))
        # With the authorizer on, the certificate alone may not register: the admin token.
        assert ("TEMPORAL_API_KEY" in env) is bool(cluster.get("mtls"))


@pytest.mark.parametrize("stack", ["prod-scylla", "migration"])
def test_scylla_asks_for_a_password_that_temporal_and_the_bootstrap_read(stacks, stack):
    import yaml

    run = stacks[stack]
    (sc,) = custom(run, "ScyllaCluster")
    namespace = sc["metadata"]["namespace"]
    cluster = namespace.removesuffix("-scylla")
    secret = f"{cluster}-scylla-credentials"

    def config_map(ns, name):
        return run.one("kubernetes:core/v1:ConfigMap", metadata={"name": name, "namespace": ns})

    (rack_config,) = {r["scyllaConfig"] for r in sc["spec"]["datacenter"]["racks"]}
    scylla_yaml = yaml.safe_load(
        config_map(namespace, rack_config)["inputs"]["data"]["scylla.yaml"]
    )
    assert scylla_yaml["authenticator"] == "PasswordAuthenticator"
    assert scylla_yaml["authorizer"] == "CassandraAuthorizer"
    # One generated password, in the Temporal namespace (the chart) and Scylla's (the Job).
    values = {
        s["inputs"]["metadata"]["namespace"]: s["inputs"]["stringData"]["password"]
        for s in run.of_type("kubernetes:core/v1:Secret")
        if s["inputs"]["metadata"]["name"] == secret
    }
    assert set(values) == {cluster, namespace} and len(set(values.values())) == 1
    cql = run.temporal_release(cluster)["inputs"]["values"]["server"]["config"]["persistence"][
        "datastores"
    ]["default"]["cassandra"]
    assert (cql["user"], cql["existingSecret"], cql["secretKey"]) == (
        "temporal",
        secret,
        "password",
    )
    assert "password" not in cql
    # The bootstrap Job: cqlsh sets the superuser's and Temporal's passwords, then the
    # bootstrap logs in as Temporal's role with the password through the spec's env var.
    job = run.one(
        "kubernetes:batch/v1:Job",
        metadata={"name": "temporal-keyspace-bootstrap", "namespace": namespace},
    )["inputs"]["spec"]["template"]["spec"]
    (roles,) = job["initContainers"]
    refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in roles["env"] if "valueFrom" in e
    }
    assert refs == {"ADMIN_PASSWORD": "scylla-admin-credentials", "CQL_PASSWORD": secret}
    script = roles["command"][-1]
    assert "ALTER ROLE cassandra WITH PASSWORD = '$ADMIN_PASSWORD'" in script
    assert "CREATE ROLE IF NOT EXISTS temporal WITH LOGIN = true" in script
    spec = load_spec_text(
        config_map(namespace, "temporal-cluster-spec")["inputs"]["data"]["cluster.yaml"]
    )
    (bootstrap,) = job["containers"]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in bootstrap["env"]}
    assert spec.persistence.user == "temporal"
    assert env[spec.persistence.password.env_var] == {"name": secret, "key": "password"}
    admin = run.one(
        "kubernetes:core/v1:Secret",
        metadata={"name": "scylla-admin-credentials", "namespace": namespace},
    )
    assert admin["inputs"]["stringData"]["password"] not in values.values()


def load_spec_text(text: str):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cluster.yaml"
        path.write_text(text)
        return load_spec(path)

"""Dashboards, the OTel collector, and the network when it comes from an existing VPC."""

from __future__ import annotations

import json

import pytest
from infra_harness import INFRA, STACKS

DASHBOARDS = sorted((INFRA / "dashboards").glob("*.json"))


def exprs(dashboard: dict) -> dict[str, str]:
    return {p["title"]: " ".join(t["expr"] for t in p["targets"]) for p in dashboard["panels"]}


def test_dashboards_have_the_panels_we_rely_on():
    panels: dict[str, str] = {}
    for path in DASHBOARDS:
        panels.update(exprs(json.loads(path.read_text())))
    by_metric = {
        "action|action_total": "sum by (action_type)",
        "state_transition_count": "",
        "lock_latency_bucket": "",
        "schedule_to_start_latency_bucket": "",
        "persistence_latency_bucket": "",
        "temporal_worker_task_slots_available": "",
    }
    for metric, grouping in by_metric.items():
        hits = [e for e in panels.values() if metric in e]
        assert hits, f"no panel reads {metric}"
        assert all(grouping in e for e in hits)
    billable = next(e for t, e in panels.items() if "Billable actions" in t)
    assert 'service_name="frontend"' in billable and "rate(" in billable


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_grafana_json(path):
    dash = json.loads(path.read_text())
    assert dash["uid"] and dash["title"] and dash["panels"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dash["panels"]:
        assert panel["datasource"]["type"] == "prometheus"
        assert all(t["refId"] and t["expr"] for t in panel["targets"])


def test_dashboards_ship_as_grafana_sidecar_config_maps(stacks):
    run = stacks["prod-postgres"]
    maps = [
        r["inputs"]
        for r in run.of_type("kubernetes:core/v1:ConfigMap")
        if r["inputs"]["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
    ]
    assert sorted(m["metadata"]["name"] for m in maps) == sorted(
        f"dashboard-{p.stem}" for p in DASHBOARDS
    )
    for m in maps:
        (text,) = m["data"].values()
        json.loads(text)


def test_otel_collector_exports_to_the_configured_endpoint(stacks):
    run = stacks["dev"]
    (otel,) = [
        r["inputs"]
        for r in run.of_type("kubernetes:helm.sh/v3:Release")
        if r["inputs"]["chart"] == "opentelemetry-collector"
    ]
    config = otel["values"]["config"]
    assert config["exporters"]["otlphttp"]["endpoint"] == "https://otlp.dev.haul.internal:4318"
    assert set(config["service"]["pipelines"]) == {"traces", "metrics"}
    assert otel["version"] == __import__("app.versions").versions.OTEL_COLLECTOR_CHART


def test_existing_vpc_is_used_as_given(run_stack):
    existing = {
        "vpcId": "vpc-0123456789abcdef0",
        "privateSubnetIds": ["subnet-a", "subnet-b", "subnet-c"],
        "publicSubnetIds": ["subnet-pa"],
    }
    run = run_stack("prod-postgres", overrides={"haul:network.existing": existing})
    assert run.ok, run.error
    assert run.of_type("aws:ec2/vpc:Vpc") == []
    assert run.of_type("aws:ec2/subnet:Subnet") == []
    assert run.of_type("aws:ec2/natGateway:NatGateway") == []
    eks = run.of_type("aws:eks/cluster:Cluster")[0]["inputs"]
    assert eks["vpcConfig"]["subnetIds"] == existing["privateSubnetIds"]
    groups = run.of_type("aws:rds/subnetGroup:SubnetGroup")
    assert groups[0]["inputs"]["subnetIds"] == existing["privateSubnetIds"]
    sg = run.of_type("aws:ec2/securityGroup:SecurityGroup")[0]["inputs"]
    assert sg["vpcId"] == existing["vpcId"]


@pytest.mark.parametrize("stack", STACKS)
def test_grafana_admin_password_is_generated_and_read_from_a_secret(stacks, stack):
    run = stacks[stack]
    release = run.one("kubernetes:helm.sh/v3:Release", chart="kube-prometheus-stack")["inputs"]
    admin = release["values"]["grafana"]["admin"]
    assert "adminPassword" not in release["values"]["grafana"]
    secret = run.one(
        "kubernetes:core/v1:Secret",
        metadata={"name": admin["existingSecret"], "namespace": release["namespace"]},
    )
    data = secret["inputs"]["stringData"]
    (password,) = [
        p
        for p in run.of_type("random:index/randomPassword:RandomPassword")
        if p["name"].endswith("-grafana-admin")
    ]
    assert data[admin["passwordKey"]] == f"mock-password-{password['name']}"
    assert data[admin["userKey"]] == "admin"
    assert run.one("kubernetes:core/v1:Namespace", metadata={"name": release["namespace"]})

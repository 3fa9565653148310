"""Bad stack config fails with a clear message before any resource is declared."""

from __future__ import annotations

import pytest

CASES = {
    "frontend without mTLS in prod": (
        "prod-postgres",
        {"overrides": {"haul:clusters[0].mtls": False}},
        ["cluster temporal-a: prod needs mtls: true"],
    ),
    "scylla host verification off in prod": (
        "prod-scylla",
        {"overrides": {"haul:clusters[0].spec.persistence.tls": {"enabled": True}}},
        ["cluster temporal-b: prod needs spec.persistence.tls.enable_host_verification"],
    ),
    # "9.6" >= "15" as strings: the major version is compared as a number.
    "postgres 9.6 is older than 15": (
        "dev",
        {"overrides": {"haul:clusters[0].postgres.engineVersion": "9.6"}},
        ["postgres.engineVersion 9.6 is older than 15", "use 15 or later"],
    ),
    "postgres version that is not a number": (
        "dev",
        {"overrides": {"haul:clusters[0].postgres.engineVersion": "latest"}},
        ["haul:clusters.0.postgres.engineVersion", "should match pattern"],
    ),
    "missing value": (
        "dev",
        {"drop": ["haul:clusters[0].postgres.instanceClass"]},
        ["haul:clusters.0.postgres.instanceClass", "Field required"],
    ),
    "missing shard count in prod": (
        "prod-postgres",
        {"drop": ["haul:clusters[0].spec.numHistoryShards"]},
        ["numHistoryShards is not set", "temporal-a"],
    ),
    "shard count not a power of two": (
        "dev",
        {"overrides": {"haul:clusters[0].spec.numHistoryShards": 1000}},
        ["numHistoryShards 1000 is not a power of two"],
    ),
    "cassandra visibility": (
        "prod-scylla",
        {"overrides": {"haul:clusters[0].spec.visibility": {"kind": "cassandra"}}},
        ["visibility store is cassandra", "since Temporal server 1.24"],
    ),
    "tls off in prod": (
        "prod-postgres",
        {"overrides": {"haul:clusters[0].spec.persistence.tls": {"enabled": False}}},
        ["persistence store (postgres) has TLS off in production cluster 'temporal-a'"],
    ),
    # The phase lives in the app database: a migration names it, the cluster order does not.
    "two apps clusters without the app database's cluster": (
        "migration",
        {"drop": ["haul:apps.databaseCluster"]},
        ["apps.clusters", "set apps.databaseCluster"],
    ),
    "host verification off in prod": (
        "migration",
        {"overrides": {"haul:clusters[1].spec.visibility.tls": {"enabled": True}}},
        ["visibility store (postgres)", "host verification off", "'temporal-b'"],
    ),
    "scylla replication under 3 in prod": (
        "prod-scylla",
        {"overrides": {"haul:clusters[0].spec.persistence.replication": {"us-east-1": 2}}},
        ["replication {'us-east-1': 2} in production cluster 'temporal-b'", "at least 3"],
    ),
    "scylla replication without the local datacenter": (
        "prod-scylla",
        {"overrides": {"haul:clusters[0].spec.persistence.replication": {"eu-west-1": 3}}},
        ["datacenter 'us-east-1' has no replication factor"],
    ),
    "cassandra is for local clusters": (
        "prod-scylla",
        {"overrides": {"haul:clusters[0].spec.persistence.kind": "cassandra"}},
        ["temporal-b", "infra deploys ScyllaDB", "kind: scylla"],
    ),
    "scylla store without scylla nodes": (
        "prod-scylla",
        {"drop": ["haul:clusters[0].scylla"]},
        ["temporal-b", "kind scylla needs a scylla block"],
    ),
    "worker group on a queue no workflow uses": (
        "dev",
        {"overrides": {"haul:apps.workerGroups[0].taskQueues": ["parcel", "documents"]}},
        ["worker group general", "['documents']", "no workflow or activity", "'parcel'"],
    ),
    "no deletion protection in prod": (
        "prod-postgres",
        {"overrides": {"haul:clusters[0].postgres.deletionProtection": False}},
        ["deletionProtection"],
    ),
    "public database": (
        "dev",
        {"overrides": {"haul:clusters[0].postgres.publiclyAccessible": True}},
        ["publiclyAccessible must be false"],
    ),
    "database open to the world": (
        "dev",
        {"overrides": {"haul:clusters[0].postgres.allowedCidrs": ["0.0.0.0/0"]}},
        ["never open Postgres to the world"],
    ),
    "admintools in prod": (
        "prod-postgres",
        {"overrides": {"haul:clusters[0].admintools": True}},
        ["admintools must be off in prod"],
    ),
    "plaintext secret in stack config": (
        "dev",
        {"overrides": {"haul:slackToken": "xoxb-not-a-real-token"}},
        ["credentials in plain text", "haul:slackToken", "--secret"],
    ),
    "nested plaintext secret": (
        "prod-postgres",
        {"overrides": {"haul:clusters[0].web.oidc.clientSecret": "hunter2"}},
        ["credentials in plain text", "clientSecret"],
    ),
    "typo in a key": (
        "dev",
        {"overrides": {"haul:clusters[0].postgres.instanceClas": "db.t4g.small"}},
        ["instanceClas", "Extra inputs are not permitted"],
    ),
    "workers on an unknown cluster": (
        "dev",
        {"overrides": {"haul:apps.clusters": ["temporal-z"]}},
        ["temporal-z", "not in clusters"],
    ),
    "too few scylla nodes for RF 3": (
        "prod-scylla",
        {"overrides": {"haul:network.availabilityZones": ["us-east-1a", "us-east-1b"]}},
        ["replication factor 3 in datacenter us-east-1", "2 racks"],
    ),
    "web UI without OIDC": (
        "prod-postgres",
        {"drop": ["haul:clusters[0].web.oidc"]},
        ["web.enabled needs web.oidc"],
    ),
    "no cluster admins": (
        "dev",
        {"overrides": {"haul:eks.adminRoleArns": []}},
        ["haul:eks.adminRoleArns", "at least 1 item"],
    ),
    "missing RDS CA bundle": (
        "dev",
        {"ca_file": "/nonexistent/rds-bundle.pem"},
        ["haul:tls.rdsCaBundleFile", "not a PEM certificate bundle"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_config_fails_before_any_resource(run_stack, case):
    stack, request, expected = CASES[case]
    run = run_stack(stack, **request)
    assert not run.ok, f"{case}: the program accepted it"
    assert run.error.startswith("ConfigError"), run.error
    for text in expected:
        assert text in run.error, f"{case}: {text!r} not in {run.error!r}"
    assert run.resources == [], f"{case}: {len(run.resources)} resources declared before the error"


def test_a_secret_config_key_is_accepted_as_secret(run_stack):
    # Declared as a Pulumi secret, the same key is no longer a plaintext leak; it is then refused
    # only as an unknown key.
    run = run_stack("dev", overrides={"haul:slackToken": "xoxb"}, secret_keys=["haul:slackToken"])
    assert not run.ok
    assert "plain text" not in run.error
    assert "slackToken" in run.error and "Extra inputs are not permitted" in run.error

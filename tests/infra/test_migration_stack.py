"""The migration stack makes the runbooks true: every worker pod reaches both clusters (both
envconfig profiles, both client certificates mounted) and follows the phase in the app
database instead of a cluster order in the stack config."""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any

import jwt
import pytest
from infra_harness import stack_file
from temporalio.envconfig import ClientConfig

from app.stack import authz

CLUSTERS = {"temporal-a", "temporal-b"}


def worker_deployments(run) -> list[dict[str, Any]]:
    return [
        d["inputs"]
        for d in run.of_type("kubernetes:apps/v1:Deployment")
        if d["inputs"]["metadata"]["labels"]["haul.dev/role"] == "worker"
    ]


def profiles(run) -> dict[str, Any]:
    secret = run.one(
        "kubernetes:core/v1:Secret",
        metadata={"name": "temporal-client", "namespace": "haul-workers"},
    )
    text = secret["inputs"]["stringData"]["temporal.toml"]
    return dict(ClientConfig.load(config_source=text, config_file_strict=True).profiles)


def test_the_migration_stack_lists_both_clusters_and_names_the_app_database() -> None:
    apps = stack_file("migration")["haul:apps"]
    assert set(apps["clusters"]) == CLUSTERS
    # The phase lives in one app database that both sides read.
    assert apps["databaseCluster"] == "temporal-a"


def _verified_claims(token: str, jwks_text: str) -> dict[str, Any]:
    keys = {k["kid"]: jwt.PyJWK(k) for k in json.loads(jwks_text)["keys"]}
    kid = jwt.get_unverified_header(token)["kid"]
    if kid not in keys:
        raise jwt.InvalidTokenError(f"no key {kid!r} in this JWKS")
    return jwt.decode(token, keys[kid].key, algorithms=[authz.ALGORITHM])


def test_each_profile_carries_its_own_clusters_token(stacks) -> None:
    """With HAUL_MIGRATION no TEMPORAL_* variable overrides a profile, and one TEMPORAL_API_KEY
    could hold only one cluster's token anyway: each profile carries the token its own
    cluster's claim mapper accepts, and the other cluster's claim mapper refuses it."""
    run = stacks["migration"]
    found = profiles(run)
    jwks = {
        c: run.one("kubernetes:core/v1:ConfigMap", metadata={"name": f"{c}-jwks", "namespace": c})[
            "inputs"
        ]["data"]["jwks.json"]
        for c in CLUSTERS
    }
    for cluster in CLUSTERS:
        token = found[cluster].api_key
        assert token, f"profile {cluster} has no api_key"
        assert _verified_claims(token, jwks[cluster])["permissions"] == ["haul:write"]
        (other,) = CLUSTERS - {cluster}
        with pytest.raises(jwt.InvalidTokenError):
            _verified_claims(token, jwks[other])
    for dep in worker_deployments(run):
        (container,) = dep["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e for e in container["env"]}
        assert env["HAUL_MIGRATION"]["value"] == "true"
        assert "TEMPORAL_API_KEY" not in env
        volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
        assert volumes["temporal-client"]["secret"]["secretName"] == "temporal-client"


def test_every_worker_pod_mounts_both_clusters_certificates(stacks) -> None:
    run = stacks["migration"]
    found = profiles(run)
    assert set(found) == CLUSTERS
    deployments = worker_deployments(run)
    assert {d["metadata"]["labels"]["haul.dev/temporal-cluster"] for d in deployments} == CLUSTERS
    for dep in deployments:
        pod = dep["spec"]["template"]["spec"]
        container = pod["containers"][0]
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        for name, profile in found.items():
            # Each profile's certificate, key and CA sit in a mount of that cluster's Secret.
            paths = {profile.tls.client_cert, profile.tls.client_private_key}
            paths.add(profile.tls.server_root_ca_cert)
            dirs = {str(PurePosixPath(str(p)).parent) for p in paths}
            assert len(dirs) == 1, (name, paths)
            mount = mounts[dirs.pop()]
            assert mount["readOnly"] is True
            secret = volumes[mount["name"]]["secret"]["secretName"]
            assert secret == f"{name}-client-tls", (dep["metadata"]["name"], name, secret)


def test_each_profile_points_at_its_own_cluster(stacks) -> None:
    for name, profile in profiles(stacks["migration"]).items():
        assert profile.address == f"{name}-frontend.{name}.svc.cluster.local:7233"
        assert profile.tls.server_name == f"{name}-frontend"
        assert profile.namespace == "haul"
        assert f"/{name}/" in str(profile.tls.client_cert)


def test_the_client_certificates_are_issued_for_both_clusters(stacks) -> None:
    run = stacks["migration"]
    certs = {
        c["inputs"]["spec"]["secretName"]: c["inputs"]
        for c in run.resources
        if c["type"].endswith(":Certificate")
        and c["inputs"]["metadata"]["namespace"] == "haul-workers"
    }
    assert {f"{c}-client-tls" for c in CLUSTERS} <= set(certs)
    issuers = {certs[f"{c}-client-tls"]["spec"]["issuerRef"]["name"] for c in CLUSTERS}
    assert len(issuers) == 2, issuers


def test_workers_follow_the_phase_in_the_app_database_with_two_clusters(stacks) -> None:
    for dep in worker_deployments(stacks["migration"]):
        env = {
            e["name"]: e.get("value")
            for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        assert env["HAUL_MIGRATION"] == "true"
        assert env["TEMPORAL_CONFIG_FILE"] == "/etc/haul/client/temporal.toml"
        assert env["TEMPORAL_PROFILE"] == dep["metadata"]["labels"]["haul.dev/temporal-cluster"]


def test_a_single_cluster_stack_does_not_follow_a_migration(stacks) -> None:
    for dep in worker_deployments(stacks["dev"]):
        container = dep["spec"]["template"]["spec"]["containers"][0]
        assert "HAUL_MIGRATION" not in {e["name"] for e in container["env"]}
        tls_mounts = [
            m for m in container["volumeMounts"] if m["mountPath"].startswith("/etc/haul/tls/")
        ]
        assert len(tls_mounts) <= 1


CLOUD = {
    "name": "cloud",
    "address": "haul-prod.a1b2c.tmprl.cloud:7233",
    "namespace": "haul-prod.a1b2c",
    "secretName": "cloud-client-tls",
}
FROM_CLOUD = {
    "haul:apps.externalClusters": [CLOUD],
    "haul:apps.clusters": ["cloud", "temporal-a"],
    "haul:apps.databaseCluster": "temporal-a",
}


def test_a_temporal_cloud_namespace_is_a_profile_with_the_secret_you_made(run_stack) -> None:
    """cloud-to-self-hosted.md: the Cloud namespace sits next to temporal-a in every pod."""
    run = run_stack("prod-postgres", overrides=FROM_CLOUD)
    assert run.ok, run.error
    found = profiles(run)
    cloud = found["cloud"]
    assert cloud.address == CLOUD["address"] and cloud.namespace == CLOUD["namespace"]
    # Cloud's server certificate is publicly trusted: no CA path, no server name override.
    assert cloud.tls.server_root_ca_cert is None and not cloud.tls.server_name
    assert str(cloud.tls.client_cert) == "/etc/haul/tls/cloud/tls.crt"
    assert found["temporal-a"].address.startswith("temporal-a-frontend.")
    deployments = worker_deployments(run)
    assert {d["metadata"]["labels"]["haul.dev/temporal-cluster"] for d in deployments} == {
        "cloud",
        "temporal-a",
    }
    for dep in deployments:
        pod = dep["spec"]["template"]["spec"]
        secrets = {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
        assert {"cloud-client-tls", "temporal-a-client-tls"} <= secrets
        env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
        assert env["HAUL_MIGRATION"] == "true"
    # cert-manager issues temporal-a's client certificate; Cloud's is yours.
    issued = {
        r["inputs"]["spec"]["secretName"]
        for r in run.resources
        if r["type"].endswith(":Certificate")
        and r["inputs"]["metadata"]["namespace"] == "haul-workers"
    }
    assert "temporal-a-client-tls" in issued and "cloud-client-tls" not in issued
    # KEDA scales the Cloud Deployment on Cloud's backlog, with the same Secret and no CA.
    scaler = next(
        r["inputs"]
        for r in run.resources
        if r["type"].endswith(":ScaledObject")
        and r["inputs"]["metadata"]["name"].endswith("-cloud")
    )
    trigger = scaler["spec"]["triggers"][0]["metadata"]
    assert trigger["endpoint"] == CLOUD["address"] and "tlsServerName" not in trigger
    auth = next(
        r["inputs"]
        for r in run.resources
        if r["type"].endswith(":TriggerAuthentication")
        and r["inputs"]["metadata"]["name"].endswith("-cloud")
    )
    refs = {(t["parameter"], t["name"]) for t in auth["spec"]["secretTargetRef"]}
    assert refs == {("cert", "cloud-client-tls"), ("key", "cloud-client-tls")}


def test_an_external_cluster_cannot_be_the_only_apps_cluster(run_stack) -> None:
    run = run_stack(
        "prod-postgres",
        overrides={"haul:apps.externalClusters": [CLOUD], "haul:apps.clusters": ["cloud"]},
    )
    assert not run.ok
    assert "at least one cluster this stack deploys" in run.error, run.error

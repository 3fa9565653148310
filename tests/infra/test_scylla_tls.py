"""Scylla requires client certificates: who gets one, and where it is mounted."""

from __future__ import annotations

from clusterspec import SCYLLA_CLIENT_CERT, SCYLLA_CLIENT_CERT_DIR, SCYLLA_CLIENT_KEY

SECRET = "kubernetes:core/v1:Secret"
CLUSTER = "temporal-b"


def _secret(run, name: str, namespace: str) -> dict:
    found = [
        r["inputs"]
        for r in run.of_type(SECRET)
        if r["inputs"]["metadata"] == {"name": name, "namespace": namespace}
    ]
    assert len(found) == 1, f"expected one Secret {namespace}/{name}, got {len(found)}"
    return found[0]


def test_the_client_certificate_is_issued_for_client_auth_by_the_scylla_ca(stacks):
    run = stacks["prod-scylla"]
    cert = run.one("tls:index/locallySignedCert:LocallySignedCert", allowedUses=[
        "digital_signature", "key_encipherment", "client_auth"
    ])
    assert cert["inputs"]["caCertPem"], "signed by the Scylla CA, the one its truststore holds"
    # The same pair is in the Scylla namespace (bootstrap Job) and the Temporal one (server).
    in_scylla = _secret(run, "scylla-client-cert", f"{CLUSTER}-scylla")["stringData"]
    in_temporal = _secret(run, "scylla-client-cert", CLUSTER)["stringData"]
    assert in_scylla == in_temporal and set(in_temporal) == {"tls.crt", "tls.key"}


def test_temporal_and_the_bootstrap_job_mount_it_where_the_spec_points(stacks):
    run = stacks["prod-scylla"]
    server = run.temporal_release(CLUSTER)["inputs"]["values"]["server"]
    tls = server["config"]["persistence"]["datastores"]["default"]["cassandra"]["tls"]
    assert (tls["certFile"], tls["keyFile"]) == (SCYLLA_CLIENT_CERT, SCYLLA_CLIENT_KEY)
    assert {
        "name": "scylla-client-cert",
        "mountPath": SCYLLA_CLIENT_CERT_DIR,
        "readOnly": True,
    } in server["additionalVolumeMounts"]
    job = run.one("kubernetes:batch/v1:Job", metadata={
        "name": "temporal-keyspace-bootstrap", "namespace": f"{CLUSTER}-scylla"
    })["inputs"]["spec"]["template"]["spec"]
    for container in [*job["initContainers"], *job["containers"]]:
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts.get("client-cert") == SCYLLA_CLIENT_CERT_DIR, container["name"]
    assert {"name": "client-cert", "secret": {"secretName": "scylla-client-cert"}} in job[
        "volumes"
    ]
    (cm,) = [
        r["inputs"] for r in run.of_type("kubernetes:core/v1:ConfigMap")
        if r["inputs"]["metadata"]["name"] == "scylla-config"
    ]
    assert "  require_client_auth: true\n" in cm["data"]["scylla.yaml"]

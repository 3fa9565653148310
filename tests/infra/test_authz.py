"""The frontend's authorizer in the deployed stacks: a signing key in a Secret, its public JWKS
mounted into the server, and one token per role where each caller runs."""

from __future__ import annotations

import json
import tomllib

import jwt

from app.stack import authz

SECRET = "kubernetes:core/v1:Secret"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
JOB = "kubernetes:batch/v1:Job"
CLUSTER = "temporal-a"


def _named(run, type_: str, name: str, namespace: str) -> dict:
    found = [
        r["inputs"]
        for r in run.of_type(type_)
        if r["inputs"].get("metadata", {}).get("name") == name
        and r["inputs"].get("metadata", {}).get("namespace") == namespace
    ]
    assert len(found) == 1, f"expected one {type_} {namespace}/{name}, got {len(found)}"
    return found[0]


def _claims(token: str, jwks_text: str) -> dict:
    keys = {k["kid"]: jwt.PyJWK(k) for k in json.loads(jwks_text)["keys"]}
    kid = jwt.get_unverified_header(token)["kid"]
    return jwt.decode(token, keys[kid].key, algorithms=[authz.ALGORITHM])


def test_prod_release_runs_the_jwt_authorizer_with_the_mounted_jwks(stacks):
    run = stacks["prod-postgres"]
    server = run.temporal_release(CLUSTER)["inputs"]["values"]["server"]
    auth = server["config"]["authorization"]
    assert auth == authz.server_authorization("file:///etc/temporal/jwks/jwks.json")
    # Chart 1.7.0's templates read `server.internal-frontend`; `internalFrontend` is ignored.
    assert server["internal-frontend"] == {"enabled": True}
    assert "internalFrontend" not in server
    assert {"name": "jwks", "configMap": {"name": f"{CLUSTER}-jwks"}} in server[
        "additionalVolumes"
    ]
    assert {"name": "jwks", "mountPath": "/etc/temporal/jwks", "readOnly": True} in server[
        "additionalVolumeMounts"
    ]


def test_each_role_gets_its_token_and_only_the_signing_key_secret_holds_the_key(stacks):
    run = stacks["prod-postgres"]
    jwks_text = _named(run, CONFIG_MAP, f"{CLUSTER}-jwks", CLUSTER)["data"]["jwks.json"]
    assert '"d"' not in jwks_text and "PRIVATE" not in jwks_text
    key = _named(run, SECRET, f"{CLUSTER}-jwt-signing-key", CLUSTER)["stringData"]["key.pem"]
    assert authz.jwks(key) == jwks_text
    admin = _named(run, SECRET, f"{CLUSTER}-admin-token", CLUSTER)["stringData"]["token"]
    assert _claims(admin, jwks_text)["permissions"] == ["temporal-system:admin"]
    worker = _named(run, SECRET, f"{CLUSTER}-temporal-token", "haul-workers")["stringData"]
    assert _claims(worker["token"], jwks_text)["permissions"] == ["haul:write"]
    # The signing key never leaves the cluster's own namespace.
    holders = [
        r["inputs"]["metadata"]
        for r in run.of_type(SECRET)
        if "key.pem" in (r["inputs"].get("stringData") or {})
    ]
    assert holders == [{"name": f"{CLUSTER}-jwt-signing-key", "namespace": CLUSTER}]


def test_workers_send_the_worker_token_and_the_namespace_job_the_admin_token(stacks):
    run = stacks["prod-postgres"]
    # The worker role's token is the cluster profile's api_key in the pods' temporal.toml.
    toml = _named(run, SECRET, "temporal-client", "haul-workers")["stringData"]["temporal.toml"]
    worker = _named(run, SECRET, f"{CLUSTER}-temporal-token", "haul-workers")["stringData"]
    assert tomllib.loads(toml)["profile"][CLUSTER]["api_key"] == worker["token"]
    deployments = [
        d
        for d in run.of_type(DEPLOYMENT)
        if d["inputs"]["metadata"].get("namespace") == "haul-workers"
    ]
    assert deployments
    for dep in deployments:
        (container,) = dep["inputs"]["spec"]["template"]["spec"]["containers"]
        assert "TEMPORAL_API_KEY" not in {e["name"] for e in container["env"]}
    job = _named(run, JOB, "namespace-setup", CLUSTER)
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {
        "name": "TEMPORAL_API_KEY",
        "valueFrom": {"secretKeyRef": {"name": f"{CLUSTER}-admin-token", "key": "token"}},
    } in env


def test_the_dev_stack_without_mtls_has_no_authorizer(stacks):
    run = stacks["dev"]
    for release in run.of_type("kubernetes:helm.sh/v3:Release"):
        if release["inputs"].get("chart") != "temporal":
            continue
        server = release["inputs"]["values"]["server"]
        assert "authorization" not in server.get("config", {})
    assert not [r for r in run.of_type(SECRET) if r["name"].endswith("-jwt-signing-key")]

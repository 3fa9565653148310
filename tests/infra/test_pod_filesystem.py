"""Pods that ingest files can write where the blob store needs to, under their own rules.

The worker and load-generator pods run with a read-only root filesystem; the S3 blob store
spools each upload to a temporary file first. This runs the real write path (against moto's
S3 server on loopback) in a private mount namespace where `/` is read-only and only the
pod's declared emptyDir mounts, taken from the rendered Deployment, are writable.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from infra_harness import ROOT
from moto.server import ThreadedMotoServer

CHILD = Path(__file__).resolve().parent / "pod_fs_child.py"
BUCKET = "haul-pod-fs"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def s3_env() -> Iterator[dict[str, str]]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket=BUCKET)
    try:
        yield env
    finally:
        server.stop()


def pod_rules(deployment: dict) -> tuple[bool, dict[str, str]]:
    """(read-only root?, {writable mount path: size limit}) of the Deployment's container."""
    pod = deployment["inputs"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    scratch = {v["name"]: v["emptyDir"] for v in pod["volumes"] if "emptyDir" in v}
    writable = {
        m["mountPath"]: scratch[m["name"]].get("sizeLimit", "")
        for m in container["volumeMounts"]
        if m["name"] in scratch and not m.get("readOnly")
    }
    return container["securityContext"]["readOnlyRootFilesystem"], writable


def run_in_pod_fs(writable: dict[str, str], env: dict[str, str]) -> dict:
    proc = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "--", sys.executable, str(CHILD)],
        input=json.dumps({"writable": writable, "blob_dir": f"s3://{BUCKET}/claim-check"}),
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
        env={**os.environ, **env, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"},
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"child printed no result (rc {proc.returncode}):\n{proc.stderr[-4000:]}"
    result = json.loads(lines[-1])
    assert result["sandbox"], "the root filesystem stayed writable: the sandbox proves nothing"
    return result


def ingesting_deployments(run) -> dict[str, dict]:
    """Every Deployment whose pods get a blob store (HAUL_BLOB_DIR)."""
    out = {}
    for dep in run.of_type("kubernetes:apps/v1:Deployment"):
        (container,) = dep["inputs"]["spec"]["template"]["spec"]["containers"]
        if any(e["name"] == "HAUL_BLOB_DIR" for e in container["env"]):
            out[dep["inputs"]["metadata"]["name"]] = dep
    return out


def test_ingesting_pods_can_spool_blobs_under_their_filesystem_rules(stacks, s3_env):
    deployments = ingesting_deployments(stacks["dev"])
    assert {"worker-general-temporal-a", "haul-loadgen-worker"} <= set(deployments)
    outcomes, sizes = {}, {}
    for name, dep in deployments.items():
        read_only, writable = pod_rules(dep)
        assert read_only is True, name
        outcomes[name] = run_in_pod_fs(writable, s3_env)
        sizes[name] = writable.get("/tmp")
    assert outcomes == {n: {"ok": True, "error": None, "sandbox": True} for n in deployments}
    # A sized emptyDir: a runaway spool evicts its own pod, not every pod on the node.
    assert all(sizes.values()), sizes


def test_without_a_writable_tmp_the_blob_store_cannot_write(s3_env):
    """The defect the mount fixes: no writable directory, so every file is rejected."""
    result = run_in_pod_fs({}, s3_env)
    assert result["ok"] is False
    assert "No usable temporary directory" in result["error"]

"""Fixtures for the infra tests: run the real Pulumi program under mocks, one subprocess a run.

Each run starts a fresh interpreter (program_runner.py), because the Pulumi runtime keeps a
global root stack resource. A run takes about two seconds; identical requests are cached for
the session.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
RUNNER = Path(__file__).resolve().parent / "program_runner.py"
STACKS = ("dev", "prod-postgres", "prod-scylla", "migration")

for path in (str(INFRA), str(ROOT)):
    if path not in sys.path:
        sys.path.insert(0, path)


def generate_ca(path: Path) -> Path:
    """A throwaway CA certificate standing in for the RDS global bundle."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "haul test RDS CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


@dataclass
class Run:
    ok: bool
    error: str | None
    resources: list[dict[str, Any]]
    outputs: dict[str, Any]
    secret_outputs: list[str] = field(default_factory=list)
    traceback: str = ""
    request: dict[str, Any] = field(default_factory=dict)

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [r for r in self.resources if r["type"] == type_]

    def one(self, type_: str, **match: Any) -> dict[str, Any]:
        found = [
            r for r in self.of_type(type_) if all(r["inputs"].get(k) == v for k, v in match.items())
        ]
        assert len(found) == 1, f"expected one {type_} matching {match}, got {len(found)}"
        return found[0]

    def temporal_release(self, cluster: str) -> dict[str, Any]:
        return self.one("kubernetes:helm.sh/v3:Release", chart="temporal", name=cluster)


@cache
def _run(request_json: str) -> Run:
    proc = subprocess.run(
        [sys.executable, str(RUNNER)],
        input=request_json,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=INFRA,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"runner printed no result (rc {proc.returncode}):\n{proc.stderr[-4000:]}"
    data = json.loads(lines[-1])
    return Run(
        ok=data["ok"],
        error=data["error"],
        resources=data["resources"],
        outputs=data["outputs"],
        secret_outputs=data.get("secret_outputs", []),
        traceback=data.get("traceback", ""),
        request=json.loads(request_json),
    )


@pytest.fixture(scope="session")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_ca(tmp_path_factory.mktemp("ca") / "rds-test-bundle.pem")


@pytest.fixture(scope="session")
def run_stack(ca_file: Path):
    """run_stack(stack, **request) -> Run; see program_runner.py for the request keys."""

    def run(stack: str, **request: Any) -> Run:
        body = {"stack": stack, "ca_file": str(ca_file), **request}
        return _run(json.dumps(body, sort_keys=True))

    return run


@pytest.fixture(scope="session")
def stacks(run_stack) -> dict[str, Run]:
    # Two at a time: each run is its own interpreter, and the budget is two cores.
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = dict(zip(STACKS, pool.map(run_stack, STACKS), strict=True))
    for name, run in runs.items():
        assert run.ok, f"stack {name} failed under mocks: {run.error}\n{run.traceback}"
    return runs

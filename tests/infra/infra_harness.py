"""Shared pieces of the infra tests: paths, the stacks, a throwaway CA, and the mock runs.

Each run starts a fresh interpreter (program_runner.py), because the Pulumi runtime keeps a
global root stack resource. A run takes about two seconds; identical requests are cached for
the session. (A module of its own, so test modules never import `conftest` by name.)
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

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


def stack_file(stack: str) -> dict[str, Any]:
    """The committed stack file's config block (infra/Pulumi.<stack>.yaml)."""
    import yaml

    return yaml.safe_load((INFRA / f"Pulumi.{stack}.yaml").read_text())["config"]


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

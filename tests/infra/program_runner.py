"""Run infra/__main__.py once under Pulumi mocks, in this process, and print what it declared.

Used by tests/infra through a subprocess per run, so each stack starts from a clean Pulumi
runtime (the runtime keeps a global root stack resource). Input is one JSON object on stdin:

  stack           name of the committed stack file (infra/Pulumi.<stack>.yaml)
  overrides       {"haul:key.path[0].sub": value} applied to the stack file before validation
  drop            ["haul:key.path"] removed from the stack file before validation
  stack_updates   {"path.0.sub": value} applied to the validated StackConfig, skipping its
                  validators (to prove the policy pack catches what the config layer refuses)
  spec_updates    {"path.sub": value} applied to every deployed ClusterSpec, skipping validation
  deployed        previous `clusters` output of the stack (the guardrails' deployed state)
  ca_file         PEM bundle standing in for the RDS CA bundle
  secret_keys     config keys to mark as Pulumi secrets

Output (stdout, last line): {"ok", "error", "traceback", "resources": [...], "outputs": {...},
"secret_outputs": [...]}. The runner always runs at preview (preview=True), as a guardrail must
refuse there.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import runpy
import sys
import traceback
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"


def _parse_path(path: str) -> list[str | int]:
    parts: list[str | int] = []
    for token in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        parts.append(int(token[1:-1]) if token.startswith("[") else token)
    return parts


def set_path(doc: dict, path: str, value: Any) -> None:
    head, _, rest = _split_key(path)
    parts = [head, *_parse_path(rest)] if rest else [head]
    node: Any = doc
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = value


def drop_path(doc: dict, path: str) -> None:
    head, _, rest = _split_key(path)
    parts = [head, *_parse_path(rest)] if rest else [head]
    node: Any = doc
    for part in parts[:-1]:
        node = node[part]
    del node[parts[-1]]


def _split_key(path: str) -> tuple[str, str, str]:
    m = re.match(r"^([a-z]+:[A-Za-z0-9]+)(.*)$", path)
    assert m, path
    rest = m.group(2)
    return m.group(1), "", rest.lstrip(".")


def model_update(model: Any, path: list[str | int], value: Any) -> Any:
    """Return `model` with the value at `path` replaced, through model_copy: the parents'
    validators are skipped; a raw value replacing a model becomes that model's type."""
    head, tail = path[0], path[1:]
    if isinstance(model, list):
        items = list(model)
        items[int(head)] = value if not tail else model_update(items[int(head)], tail, value)
        return items
    if isinstance(model, dict):
        out = dict(model)
        out[head] = value if not tail else model_update(out[head], tail, value)
        return out
    current = getattr(model, str(head))
    new = value if not tail else model_update(current, tail, value)
    if not tail and isinstance(current, BaseModel) and not isinstance(new, BaseModel):
        new = type(current).model_validate(new)
    return model.model_copy(update={str(head): new})


SECRET_SIG = "4dabf18193072939515e22adb298388d"


def plain(value: Any) -> Any:
    """Unwrap Pulumi secret markers, and turn whole floats (the wire's numbers) back into ints."""
    if isinstance(value, dict):
        if SECRET_SIG in value:
            return plain(value.get("value"))
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class Mocks:
    """Records every resource; returns the computed outputs the program reads."""

    def __init__(self, deployed: Any):
        self.deployed = deployed
        self.resources: list[dict[str, Any]] = []

    def new_resource(self, args):
        inputs = plain(dict(args.inputs))
        name = args.name
        state = dict(inputs)
        t = args.typ
        arn = f"arn:aws:mock:us-east-1:111111111111:{t.split(':')[-1].lower()}/{name}"
        if t == "pulumi:pulumi:StackReference":
            state["outputs"] = {"clusters": self.deployed} if self.deployed is not None else {}
        elif t == "aws:eks/cluster:Cluster":
            state.update(
                endpoint=f"https://{name}.gr7.us-east-1.eks.amazonaws.com",
                certificateAuthority={"data": "bW9jay1jYQ=="},
                identities=[
                    {
                        "oidcs": [
                            {
                                "issuer": f"https://oidc.eks.us-east-1.amazonaws.com/id/{name.upper()}"
                            }
                        ]
                    }
                ],
                vpcConfig={
                    **inputs.get("vpcConfig", {}),
                    "clusterSecurityGroupId": f"sg-{name}-cluster",
                },
            )
        elif t == "aws:iam/openIdConnectProvider:OpenIdConnectProvider":
            state["url"] = inputs["url"].removeprefix("https://")
        elif t == "aws:rds/instance:Instance":
            state.update(address=f"{name}.cmock.us-east-1.rds.amazonaws.com", port=5432)
        elif t == "aws:ecr/repository:Repository":
            state["repositoryUrl"] = (
                f"111111111111.dkr.ecr.us-east-1.amazonaws.com/{inputs['name']}"
            )
        elif t == "aws:s3/bucket:Bucket":
            state["bucket"] = f"{inputs.get('bucketPrefix', name)}mock"
            state["arn"] = f"arn:aws:s3:::{state['bucket']}"
        elif t == "aws:iam/policy:Policy":
            # Distinct per policy, so an attachment can be traced to the policy it names.
            state["arn"] = f"arn:aws:iam::111111111111:policy/{name}"
        elif t == "random:index/randomPassword:RandomPassword":
            state["result"] = "mock-password-" + name
        elif t == "tls:index/privateKey:PrivateKey" and inputs.get("algorithm") == "RSA":
            # A real key: the program derives a JWKS and signs role tokens with it.
            from app.stack.authz import generate_key

            pem = generate_key().decode()
            state.update(privateKeyPem=pem, privateKeyPemPkcs8=pem)
        elif t.startswith("tls:"):
            state.update(
                privateKeyPem="-----BEGIN PRIVATE KEY-----\nmock\n-----END PRIVATE KEY-----\n",
                certPem="-----BEGIN CERTIFICATE-----\nmock\n-----END CERTIFICATE-----\n",
                certRequestPem="-----BEGIN CERTIFICATE REQUEST-----\nmock\n",
            )
        state.setdefault("arn", arn)
        if t.startswith("aws:") and "name" not in state:
            state["name"] = name
        self.resources.append(
            {
                "type": t,
                "name": name,
                "inputs": inputs,
                "arn": state["arn"],
                "provider": args.provider,
                "custom": args.custom,
            }
        )
        return f"{name}-id", state

    def call(self, args):
        if args.token == "aws:secretsmanager/getSecretVersion:getSecretVersion":
            return {"secretString": "mock-oidc-client-secret", "arn": args.args.get("secretId")}, []
        if args.token == "aws:ec2/getVpc:getVpc":
            return {"cidrBlock": "10.99.0.0/16", "id": args.args.get("id")}, []
        return {}, []


def stack_config(stack: str, overrides: dict, drop: list, ca_file: str | None) -> dict[str, Any]:
    doc = yaml.safe_load((INFRA / f"Pulumi.{stack}.yaml").read_text())["config"]
    doc = copy.deepcopy(doc)
    if ca_file:
        doc["haul:tls"]["rdsCaBundleFile"] = ca_file
    for path in drop:
        drop_path(doc, path)
    for path, value in overrides.items():
        set_path(doc, path, value)
    return doc


def main() -> None:
    request = json.loads(sys.stdin.read())
    sys.path[:0] = [str(INFRA), str(ROOT)]
    os.chdir(INFRA)
    import pulumi

    doc = stack_config(
        request["stack"],
        request.get("overrides", {}),
        request.get("drop", []),
        request.get("ca_file"),
    )
    pulumi.runtime.set_all_config(
        {k: v if isinstance(v, str) else json.dumps(v) for k, v in doc.items()},
        request.get("secret_keys", []),
    )
    mocks = Mocks(request.get("deployed"))

    import clusterspec
    import config

    stack_updates = request.get("stack_updates", {})
    if stack_updates:
        original_load = config.load

        def load(project_dir):
            stack = original_load(project_dir)
            for path, value in stack_updates.items():
                stack = model_update(stack, _parse_path(path), value)
            return stack

        config.load = load
    spec_updates = request.get("spec_updates", {})
    if spec_updates:
        original_deployed = clusterspec.deployed_spec

        def deployed(*args, **kwargs):
            spec = original_deployed(*args, **kwargs)
            for path, value in spec_updates.items():
                spec = model_update(spec, _parse_path(path), value)
            return spec

        clusterspec.deployed_spec = deployed

    pulumi.runtime.set_mocks(
        mocks, project="haul", stack=request["stack"], preview=True, organization="haul-platform"
    )
    result: dict[str, Any] = {"ok": True, "error": None, "outputs": {}, "secret_outputs": []}

    @pulumi.runtime.test
    def run():
        runpy.run_path(str(INFRA / "__main__.py"), run_name="__main__")
        root = pulumi.runtime.settings.get_root_resource()
        outputs = dict(getattr(root, "outputs", None) or {})

        async def collect():
            for key, value in outputs.items():
                out = pulumi.Output.from_input(value)
                result["outputs"][key] = plain(await out.future())
                if await out.is_secret():
                    result["secret_outputs"].append(key)

        return asyncio.ensure_future(collect())

    try:
        run()
    except BaseException as exc:  # noqa: BLE001 - reported to the test, which asserts on it
        result["ok"] = False
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc()
    result["resources"] = mocks.resources
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()

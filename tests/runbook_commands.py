"""The commands of the migration runbooks, and checks of the `pulumi` ones against the
committed stacks (shared by tests/unit/test_runbooks.py and tests/infra/test_runbook_stacks.py).
"""

from __future__ import annotations

import copy
import functools
import re
import shlex
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
RUNBOOKS = ROOT / "migrations" / "runbooks"
INFRA = ROOT / "infra"
BLOCK = re.compile(r"^```sh\n(.*?)^```", re.M | re.S)
# Lines that are neither haul nor pulumi: setup in a shell (a pod shell, a Secret).
SETUP = ("kubectl", "export")
PULUMI = {
    ("stack", "select"),
    ("stack", "output"),
    ("config", "get"),
    ("config", "set"),
    ("config", "rm"),
    ("preview",),
    ("up",),
    ("refresh",),
}


def runbook_files() -> list[Path]:
    return sorted(RUNBOOKS.glob("*.md"))


def commands(path: Path) -> list[list[str]]:
    """Every command line of the runbook's `sh` blocks, split as the shell would."""
    out = []
    for block in BLOCK.findall(path.read_text()):
        for line in block.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                out.append(shlex.split(line))
    return out


def _segments(key: str) -> list[str | int]:
    """`haul:apps.clusters[0]` -> ["haul:apps", "clusters", 0]."""
    head, _, tail = key.partition(".")
    parts: list[str | int] = []
    for piece in [head, *(tail.split(".") if tail else [])]:
        name, *indexes = re.split(r"\[", piece)
        if name:
            parts.append(name)
        parts += [int(i.rstrip("]")) for i in indexes]
    return parts


def _at(doc: Any, parts: list[str | int]) -> tuple[Any, str | int]:
    """The container of the last part, creating maps on the way (as `config set` does)."""
    for part, nxt in zip(parts, parts[1:], strict=False):
        if isinstance(part, int):
            if part == len(doc):
                doc.append({} if isinstance(nxt, str) else [])
            doc = doc[part]
        else:
            doc = doc.setdefault(part, {} if isinstance(nxt, str) else [])
    return doc, parts[-1]


def pulumi_error(
    args: list[str], stacks: dict[str, dict[str, Any]], current: list[str]
) -> str | None:
    """Why `pulumi args...` names something that is not there, or None. Config edits are
    applied to a copy of the stack file, so a later line sees what an earlier one set."""
    words = [a for a in args if not a.startswith("-")]
    verb = next((v for v in PULUMI if tuple(words[: len(v)]) == v), None)
    if verb is None:
        return f"pulumi {' '.join(args)}: not a command the runbooks use"
    operands = words[len(verb) :]
    stack = None
    if "--stack" in args:
        stack = args[args.index("--stack") + 1]
        operands = [w for w in operands if w != stack]
    elif verb == ("stack", "select"):
        stack = operands[0]
        current[:] = [stack]
    stack = stack or (current[0] if current else None)
    if stack not in stacks:
        return f"pulumi {' '.join(args)}: no infra/Pulumi.{stack}.yaml"
    if verb[0] != "config":
        return None
    if "--path" not in args:
        return f"pulumi {' '.join(args)}: name config with --path (runbooks edit nested keys)"
    doc = stacks[stack]
    parts = _segments(operands[0])
    try:
        if verb == ("config", "set"):
            container, last = _at(doc, parts)
            if isinstance(last, int) and last == len(container):
                container.append(operands[1])
            else:
                container[last] = operands[1]
            return None
        container = doc
        for part in parts[:-1]:
            container = container[part]
        container[parts[-1]]
        if verb == ("config", "rm"):
            del container[parts[-1]]
    except (KeyError, IndexError, TypeError):
        return f"pulumi {' '.join(args)}: {operands[0]} is not in Pulumi.{stack}.yaml"
    return None


def stack_files() -> dict[str, dict[str, Any]]:
    """A fresh copy of every committed stack file's config (the runbooks edit it)."""
    return copy.deepcopy(_stack_files())


@functools.cache
def _stack_files() -> dict[str, dict[str, Any]]:
    return {
        p.name.removeprefix("Pulumi.").removesuffix(".yaml"): yaml.safe_load(p.read_text())[
            "config"
        ]
        for p in INFRA.glob("Pulumi.*.yaml")
    }


@functools.cache
def committed(stack: str) -> dict[str, Any]:
    """The committed config of one stack (do not modify: copy it)."""
    return _stack_files()[stack]

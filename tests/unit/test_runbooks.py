"""Every command in the migration runbooks exists: each `haul ...` line parses against the real
typer CLI (the command, its options and arguments, and its `--help`), and each `pulumi ...` line
names a committed stack and, for `pulumi config`, a config path that is there."""

from __future__ import annotations

import copy
import functools
import re
import shlex
from pathlib import Path
from typing import Any

import click
import pytest
import typer
import typer._click as typer_click
import yaml
from typer.testing import CliRunner

from app.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
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


def haul_error(args: list[str]) -> str | None:
    """Why `haul args...` would not run, or None: the command path must exist and its options
    and arguments must parse; `--help` of that command must succeed."""
    # typer builds its commands on the click it bundles; either may raise.
    group: Any = typer.main.get_command(app)
    path: list[str] = []
    rest = list(args)
    while hasattr(group, "get_command") and rest and not rest[0].startswith("-"):
        sub = group.get_command(typer_click.Context(group), rest[0])
        if sub is None:
            return f"haul {' '.join([*path, rest[0]])}: no such command"
        path.append(rest.pop(0))
        group = sub
    if hasattr(group, "get_command"):
        return f"haul {' '.join(path)}: names a group, not a command"
    try:
        group.make_context(" ".join(["haul", *path]), rest)
    except (typer_click.ClickException, click.ClickException) as err:
        return f"haul {' '.join(args)}: {err.format_message()}"
    code = help_exit_code(tuple(path))
    if code != 0:
        return f"haul {' '.join(path)} --help exited {code}"
    return None


@functools.cache
def help_exit_code(path: tuple[str, ...]) -> int:
    return CliRunner().invoke(app, [*path, "--help"]).exit_code


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


def test_the_three_runbooks_exist() -> None:
    names = {p.name for p in runbook_files()}
    assert {"postgres-to-scylla.md", "shard-count.md", "cloud-to-self-hosted.md"} <= names


@pytest.mark.parametrize("path", runbook_files(), ids=lambda p: p.name)
def test_every_runbook_command_exists(path: Path) -> None:
    stacks = stack_files()
    current: list[str] = []
    errors = []
    lines = commands(path)
    assert path.name == "README.md" or any(c[0] == "haul" for c in lines), "no haul step"
    for args in lines:
        if args[0] == "haul":
            error = haul_error(args[1:])
        elif args[0] == "pulumi":
            error = pulumi_error(args[1:], stacks, current)
        elif args[0] in SETUP:
            error = None
        else:
            error = f"{' '.join(args)}: a step is a haul or pulumi command"
        if error:
            errors.append(error)
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("haul migrate frobnicate", "no such command"),
        ("haul migrate route --fast", "No such option"),
        ("haul migrate start", "Missing option"),
        ("haul migrate", "names a group"),
        ("haul stack up --backend postgres --shards many", "many"),
    ],
)
def test_a_command_that_does_not_exist_is_caught(line: str, why: str) -> None:
    error = haul_error(shlex.split(line)[1:])
    assert error is not None and why in error, error


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("pulumi up --stack nowhere", "no infra/Pulumi.nowhere.yaml"),
        ("pulumi destroy --stack migration", "not a command"),
        ("pulumi config rm --stack migration --path 'haul:apps.nothing'", "is not in"),
        ("pulumi config get --stack dev --path 'haul:clusters[3].spec'", "is not in"),
    ],
)
def test_a_pulumi_line_that_names_nothing_is_caught(line: str, why: str) -> None:
    error = pulumi_error(shlex.split(line)[1:], stack_files(), [])
    assert error is not None and why in error, error


def test_config_edits_carry_from_one_line_to_the_next() -> None:
    stacks = stack_files()
    set_line = "pulumi config set --stack dev --path 'haul:apps.externalClusters[0].name' x"
    assert pulumi_error(shlex.split(set_line)[1:], stacks, []) is None
    get_line = "pulumi config get --stack dev --path 'haul:apps.externalClusters[0].name'"
    assert pulumi_error(shlex.split(get_line)[1:], stacks, []) is None
    assert stacks["dev"]["haul:apps"]["externalClusters"] == [{"name": "x"}]

"""Every command in the migration runbooks exists: each `haul ...` line parses against the real
typer CLI (the command, its options and arguments, and its `--help`), and each `pulumi ...` line
names a committed stack and, for `pulumi config`, a config path that is there."""

from __future__ import annotations

import functools
import shlex
from pathlib import Path
from typing import Any

import click
import pytest
import typer
import typer._click as typer_click
from typer.testing import CliRunner

from app.cli.main import app
from tests.runbook_commands import SETUP, commands, pulumi_error, runbook_files, stack_files


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

"""What a runbook's `pulumi config` edits leave is a stack that deploys: at each `pulumi
preview` or `pulumi up` step, the edited stack config runs under Pulumi mocks."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runbook_commands import commands, committed, pulumi_error, runbook_files, stack_files

DEPLOY = (["preview"], ["up"])


@pytest.mark.parametrize(
    "path", [p for p in runbook_files() if p.name != "README.md"], ids=lambda p: p.name
)
def test_every_deploy_step_of_a_runbook_runs_under_mocks(run_stack, path: Path) -> None:
    stacks = stack_files()
    current: list[str] = []
    deployed = []
    for args in commands(path):
        if args[0] != "pulumi":
            continue
        assert pulumi_error(args[1:], stacks, current) is None, args
        words = [a for a in args[1:] if not a.startswith("-")]
        if words[:1] not in DEPLOY:
            continue
        stack = args[args.index("--stack") + 1] if "--stack" in args else current[0]
        base = committed(stack)
        edited = stacks[stack]
        overrides = {k: v for k, v in edited.items() if base.get(k) != v}
        drop = [k for k in base if k not in edited]
        run = run_stack(stack, overrides=overrides, drop=drop)
        assert run.ok, f"{path.name}: `{' '.join(args)}` fails under mocks: {run.error}"
        deployed.append((stack, sorted(overrides)))
    assert deployed, f"{path.name} never deploys"

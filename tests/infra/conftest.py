"""Fixtures for the infra tests: the real Pulumi program under mocks, one subprocess a run."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from infra_harness import STACKS, Run, _run, generate_ca


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

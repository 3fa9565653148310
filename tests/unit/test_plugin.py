"""One plugin wires the converter, the interceptors and the failure activity everywhere."""

from __future__ import annotations

from typing import Any, cast

from temporalio.worker import ReplayerConfig, WorkerConfig
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from app.platform import sandbox
from app.platform.converter import data_converter
from app.platform.failure_interceptor import FailureInterceptor
from app.platform.plugin import HaulPlugin


class _Client:
    def config(self, *, active_config: bool = False) -> dict[str, Any]:
        return {"interceptors": []}


def test_clients_get_the_pydantic_converter_and_no_worker_only_interceptor() -> None:
    config = HaulPlugin().configure_client(cast(Any, {"interceptors": []}))
    assert config["data_converter"] is data_converter()
    assert not any(isinstance(i, FailureInterceptor) for i in config["interceptors"])


def test_workers_get_the_failure_interceptor_and_no_recording_activity() -> None:
    config = HaulPlugin().configure_worker(
        cast(WorkerConfig, {"client": _Client(), "activities": [], "interceptors": []})
    )
    assert any(isinstance(i, FailureInterceptor) for i in config["interceptors"])
    # Workers write nothing: a write from a failing workflow held it open while the database
    # was down. The poller records failures.
    assert list(config["activities"]) == []


def test_replayers_decode_and_intercept_as_workers_do() -> None:
    config = HaulPlugin().configure_replayer(cast(ReplayerConfig, {"interceptors": []}))
    assert config["data_converter"] is data_converter()
    assert any(isinstance(i, FailureInterceptor) for i in config["interceptors"])


def test_workers_and_replayers_get_the_sandbox_with_haul_passthrough() -> None:
    plugin = HaulPlugin()
    worker = plugin.configure_worker(
        cast(
            WorkerConfig,
            {"client": _Client(), "interceptors": [], "workflow_runner": SandboxedWorkflowRunner()},
        )
    )
    replayer = plugin.configure_replayer(
        cast(ReplayerConfig, {"interceptors": [], "workflow_runner": SandboxedWorkflowRunner()})
    )
    for config in (worker, replayer):
        runner = config["workflow_runner"]
        assert isinstance(runner, SandboxedWorkflowRunner)
        assert set(sandbox.PASSTHROUGH_MODULES) <= runner.restrictions.passthrough_modules


def test_a_runner_the_caller_chose_is_kept() -> None:
    strict = sandbox.worker_runners(sandbox.WorkflowSandbox.STRICT)["workflow_runner"]
    config = HaulPlugin().configure_worker(
        cast(WorkerConfig, {"client": _Client(), "interceptors": [], "workflow_runner": strict})
    )
    assert config["workflow_runner"] is strict
    assert isinstance(strict, SandboxedWorkflowRunner)
    assert strict.restrictions == SandboxRestrictions.default

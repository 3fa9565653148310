"""One plugin wires the converter, the interceptors and the failure activity everywhere."""

from __future__ import annotations

from typing import Any, cast

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import ReplayerConfig, WorkerConfig

from app.platform.failure_interceptor import FailureInterceptor
from app.platform.plugin import HaulPlugin


class _Client:
    def config(self, *, active_config: bool = False) -> dict[str, Any]:
        return {"interceptors": []}


def test_clients_get_the_pydantic_converter_and_no_worker_only_interceptor() -> None:
    config = HaulPlugin().configure_client(cast(Any, {"interceptors": []}))
    assert config["data_converter"] is pydantic_data_converter
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
    assert config["data_converter"] is pydantic_data_converter
    assert any(isinstance(i, FailureInterceptor) for i in config["interceptors"])

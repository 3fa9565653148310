"""Settings come from HAUL_* variables through pydantic-settings; a bad value names its variable."""

from __future__ import annotations

import pytest

from app.core.settings import (
    AppSettings,
    ClientSettings,
    CliSettings,
    Settings,
    SettingsError,
    StackSettings,
)
from app.domains.parcel.models import IngestInput, PipelineSettings


def test_worker_settings_read_their_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAUL_TASK_QUEUES", "parcel, rate-audit,,")
    monkeypatch.setenv("HAUL_MAX_CONCURRENT_ACTIVITIES", "7")
    monkeypatch.setenv("HAUL_GRACEFUL_SHUTDOWN_SECONDS", "2.5")
    monkeypatch.setenv("HAUL_WORKER_HEALTH_PORT", "9191")
    monkeypatch.setenv("HAUL_DATABASE_URL", "postgresql://db/haul")
    s = Settings()
    assert s.task_queues == ["parcel", "rate-audit"]
    assert (s.max_concurrent_activities, s.graceful_shutdown_seconds) == (7, 2.5)
    assert s.health_port == 9191
    assert s.database_url == "postgresql://db/haul"
    # An explicit value wins over the environment.
    assert Settings(health_port=1, database_url="x").health_port == 1


def test_defaults_without_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HAUL_TASK_QUEUES", "HAUL_WORKER_HEALTH_PORT", "HAUL_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    s = Settings()
    assert (s.task_queues, s.health_port, s.health_host) == ([], 9090, "127.0.0.1")
    assert AppSettings().database_url == ""


@pytest.mark.parametrize(
    ("model", "variable", "value"),
    [
        (Settings, "HAUL_MAX_CONCURRENT_ACTIVITIES", "many"),
        (Settings, "HAUL_WORKER_HEALTH_PORT", "http"),
        (AppSettings, "HAUL_ROUTER_CACHE_SIZE", "-1"),
        (StackSettings, "HAUL_PORT_BASE", "80"),
        (CliSettings, "HAUL_KEEP_CLUSTER", "perhaps"),
        (ClientSettings, "HAUL_GRPC_COMPRESSION", "brotli"),
    ],
)
def test_a_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, model: type, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=f"{variable}='{value}'"):
        model()


def test_stack_homes_follow_haul_home_then_xdg(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    monkeypatch.setenv("HAUL_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("HAUL_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    s = StackSettings()
    assert s.state_home() == tmp_path / "state"
    assert s.cache_home() == tmp_path / "xdg" / "haul"


def test_pipeline_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAUL_PARCEL_PAGE_SIZE", "50")
    monkeypatch.setenv("HAUL_PARCEL_MAX_CONCURRENCY", "300")
    s = PipelineSettings.from_env(max_concurrency=20)
    assert type(s) is PipelineSettings  # the plain wire model, not the env reader
    assert (s.page_size, s.max_concurrency) == (50, 20)
    # Building the plain model (a workflow input's default) never reads the environment.
    assert PipelineSettings().page_size == 100
    assert IngestInput.model_fields["settings"].default_factory is PipelineSettings
    monkeypatch.setenv("HAUL_PARCEL_MAX_CONCURRENCY", "5000")
    with pytest.raises(SettingsError, match="HAUL_PARCEL_MAX_CONCURRENCY='5000'"):
        PipelineSettings.from_env()


def test_readme_lists_every_variable() -> None:
    """The README's one settings table names every variable the settings models read."""
    from pathlib import Path

    from app.core.settings import EnvSettings
    from app.domains.parcel.models import _PipelineEnv

    readme = Path(__file__).resolve().parents[2].joinpath("README.md").read_text()
    table = readme.split("### Settings", 1)[1].split("\n### ", 1)[0]
    models: list[type[EnvSettings]] = [
        AppSettings, Settings, StackSettings, CliSettings, ClientSettings, _PipelineEnv
    ]
    missing = [
        model.env_name(field)
        for model in models
        for field in model.model_fields
        if f"`{model.env_name(field)}`" not in table
    ]
    assert missing == []


def test_a_bad_compression_stops_connect_before_any_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio

    from app.platform.client import connect

    monkeypatch.setenv("HAUL_GRPC_COMPRESSION", "brotli")
    # Port 1 on loopback: were the setting read after connecting, this would be a connection
    # error instead.
    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")
    with pytest.raises(SettingsError, match="HAUL_GRPC_COMPRESSION='brotli'"):
        asyncio.run(connect())

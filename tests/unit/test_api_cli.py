"""`haul api`'s command: its help, and the cluster name its records carry."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from app.cli.api import cluster_name
from app.cli.main import app
from app.core.target import Target


def test_help_says_what_it_serves_and_changes() -> None:
    result = CliRunner().invoke(app, ["api", "--help"])
    assert result.exit_code == 0
    for word in ("--cluster", "--host", "--port", "/api/failures", "HAUL_API_TOKEN"):
        assert word in result.output


def test_records_carry_the_name_the_migration_router_will_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TEMPORAL_PROFILE", raising=False)
    assert cluster_name(Target(cluster="it-dev", profile="it-dev")) == "it-dev"
    # A pod outside a migration: the profile it will keep once the router names clusters.
    assert cluster_name(Target(profile="prod-a")) == "prod-a"
    monkeypatch.setenv("TEMPORAL_PROFILE", "prod-b")
    assert cluster_name(Target()) == "prod-b"
    monkeypatch.delenv("TEMPORAL_PROFILE")
    assert cluster_name(Target()) == "default"

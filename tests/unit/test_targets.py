"""One way to reach a cluster: a local cluster's name or an envconfig profile -> Target."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from app.platform.client import connect_config
from app.stack import targets
from app.stack.cluster import _write_profiles
from app.stack.registry import ClusterRecord, Registry
from app.stack.workers import worker_env


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    reg = Registry(tmp_path / "home")
    reg.put(
        ClusterRecord(
            name="blue",
            backend="dev",
            port_base=31000,
            data_dir=str(tmp_path / "home" / "clusters" / "blue"),
            postgres_password="pw",
            namespaces=["default", "haul"],
        )
    )
    return reg


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    toml = tmp_path / "temporal.toml"
    toml.write_text('[profile.prod]\naddress = "temporal:7233"\nnamespace = "billing"\n')
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(toml))
    monkeypatch.setenv("HAUL_DATABASE_URL", "postgresql://rds/haul")
    monkeypatch.setenv("HAUL_BLOB_DIR", "s3://claims/haul")
    return toml


def test_a_local_cluster_gives_its_profile_database_and_blobs(registry: Registry) -> None:
    rec = registry.get("blue")
    assert rec is not None
    t = targets.resolve("blue", registry=registry)
    assert (t.cluster, t.profile, t.namespace) == ("blue", "blue", "haul")
    assert t.config_file == str(registry.home / "temporal.toml")
    assert t.database_url == rec.dsn() and "pw@127.0.0.1:31004/haul" in t.database_url
    assert t.blob_dir == str(rec.path / "blobs")


def test_the_worker_and_the_commands_get_the_same_target(registry: Registry) -> None:
    """`haul run`'s worker gets its target through its environment; `haul worker --cluster`
    resolves it directly: the same database and blob store either way."""
    rec = registry.get("blue")
    assert rec is not None
    env = worker_env(rec)
    t = targets.resolve("blue", registry=registry)
    assert env["HAUL_DATABASE_URL"] == t.database_url
    assert env["HAUL_BLOB_DIR"] == t.blob_dir
    assert env["TEMPORAL_PROFILE"] == "blue"
    assert env["HAUL_WORKER_HEALTH_PORT"] == str(rec.port("worker_health"))


def test_the_profile_file_connects_to_the_cluster(registry: Registry) -> None:
    _write_profiles(registry)
    t = targets.resolve("blue", registry=registry)
    assert t.config_file is not None
    profile = tomllib.loads(Path(t.config_file).read_text())["profile"]["blue"]
    assert profile == {"address": "127.0.0.1:31000", "namespace": "haul"}


def test_an_unknown_cluster_says_how_to_find_one(registry: Registry) -> None:
    with pytest.raises(targets.UnknownClusterError, match="haul stack status"):
        targets.resolve("green", registry=registry)


def test_production_comes_from_envconfig_and_haul_variables(
    production: Path, registry: Registry
) -> None:
    t = targets.resolve(profile="prod", registry=registry)
    assert (t.cluster, t.profile, t.config_file, t.namespace) == ("", "prod", None, "billing")
    assert (t.database_url, t.blob_dir) == ("postgresql://rds/haul", "s3://claims/haul")
    assert t.env() == {
        "HAUL_DATABASE_URL": "postgresql://rds/haul",
        "HAUL_BLOB_DIR": "s3://claims/haul",
        "TEMPORAL_PROFILE": "prod",
    }
    # With HAUL_DATABASE_URL set, no local cluster is picked up.
    assert targets.resolve(registry=registry).cluster == ""


def test_a_missing_profile_is_a_clear_error(production: Path, registry: Registry) -> None:
    with pytest.raises(ValueError, match="envconfig profile nope"):
        targets.resolve(profile="nope", registry=registry)


def test_with_nothing_configured_the_default_local_cluster(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("HAUL_DATABASE_URL", raising=False)
    reg = Registry(tmp_path)
    reg.put(ClusterRecord(name="default", backend="dev", port_base=31020, data_dir=str(tmp_path)))
    assert targets.resolve(registry=reg).cluster == "default"


def test_the_cluster_layout(registry: Registry) -> None:
    rec = registry.get("blue")
    assert rec is not None
    assert rec.log("worker") == rec.path / "logs" / "worker.log"
    assert rec.logs_dir == rec.path / "logs"
    assert (rec.blob_dir, rec.tls_dir) == (rec.path / "blobs", rec.path / "tls")
    assert (rec.pgdata, rec.config_dir) == (rec.path / "pgdata", rec.path / "config")


def test_haul_worker_for_a_cluster_gets_its_database_and_blob_store(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`haul worker --cluster N` serves with the same app database and blob store that
    `haul run` gives its worker (without them, activities would retry forever)."""
    from typer.testing import CliRunner

    from app.cli.main import app
    from app.platform import logs, worker

    seen: dict[str, object] = {}

    async def fake_run_worker(**kwargs: object) -> None:
        seen.update(kwargs)

    monkeypatch.setenv("HAUL_HOME", str(registry.home))
    monkeypatch.setattr(worker, "run_worker", fake_run_worker)
    monkeypatch.setattr(logs, "configure", lambda: None)
    result = CliRunner().invoke(app, ["worker", "--cluster", "blue"])
    assert result.exit_code == 0, result.output
    rec = registry.get("blue")
    assert rec is not None
    settings = seen["settings"]
    assert isinstance(settings, worker.Settings)
    assert settings.database_url == rec.dsn()
    assert settings.blob_dir == str(rec.blob_dir)
    assert (seen["profile"], seen["config_file"]) == ("blue", str(registry.profile_file))


@pytest.fixture
def two_profiles(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    toml = tmp_path / "temporal.toml"
    toml.write_text(
        '[profile.old]\naddress = "127.0.0.1:1111"\nnamespace = "haul"\n'
        '[profile.new]\naddress = "127.0.0.1:2222"\nnamespace = "haul"\n'
    )
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(toml))
    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:9999")
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "elsewhere")
    return toml


def test_temporal_variables_make_two_profiles_one_server(two_profiles: Path) -> None:
    """The defect a migration cannot live with: with the CLI's rules TEMPORAL_ADDRESS
    overrides every profile loaded, so "old" and "new" silently reach one server."""
    loaded = [connect_config(p)["target_host"] for p in ("old", "new")]
    assert loaded == ["127.0.0.1:9999", "127.0.0.1:9999"]


def test_two_profiles_in_one_process_each_reach_their_own_cluster(two_profiles: Path) -> None:
    for name, address in (("old", "127.0.0.1:1111"), ("new", "127.0.0.1:2222")):
        config = connect_config(name, env_overrides=False)
        assert (config["target_host"], config.get("namespace")) == (address, "haul")


def test_a_migration_target_names_its_profile_and_ignores_other_temporal_variables(
    two_profiles: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HAUL_MIGRATION", "true")
    monkeypatch.setenv("TEMPORAL_PROFILE", "new")
    monkeypatch.setenv("HAUL_DATABASE_URL", "postgresql://rds/haul")
    t = targets.resolve(registry=Registry(tmp_path / "home"))
    assert (t.profile, t.namespace, t.migration) == ("new", "haul", True)
    assert t.env()["HAUL_MIGRATION"] == "true"
    monkeypatch.setenv("HAUL_MIGRATION", "false")
    plain = targets.resolve(profile="new", registry=Registry(tmp_path / "home"))
    assert (plain.namespace, plain.migration) == ("elsewhere", False)
    assert "HAUL_MIGRATION" not in plain.env()


def test_a_local_cluster_in_a_migration_keeps_its_profile(registry: Registry) -> None:
    t = targets.resolve("blue", registry=registry, migration=True)
    assert (t.profile, t.migration) == ("blue", True)

"""The Scylla bootstrap's rules and rendering, without a server: everything comes from the
ClusterSpec, and the spec refuses what the bootstrap must never be given."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from app.cli.db import app as db_app
from app.stack import scylla
from app.stack.spec import CassandraStore, ClusterSpec, load_spec
from app.stack.spec_render import render_spec_file


def test_the_store_refuses_a_local_datacenter_without_replication_and_a_bad_keyspace() -> None:
    with pytest.raises(ValidationError, match="'dc9' has no replication factor"):
        CassandraStore(datacenter="dc9", replication={"dc1": 3})
    with pytest.raises(ValidationError, match="not a valid CQL name"):
        CassandraStore(keyspace="x;drop", replication={"datacenter1": 3})
    with pytest.raises(ValidationError, match="replication names datacenter"):
        CassandraStore(datacenter="dc1", replication={"dc1": 3, "dc 2": 3})


def test_production_replication_is_at_least_three_per_datacenter() -> None:
    tls = {
        "enabled": True,
        "enable_host_verification": True,
        "ca_file": "/ca.pem",
        # Production Scylla requires client certificates (require_client_auth).
        "cert_file": "/client.pem",
        "key_file": "/client.key",
    }

    def prod(replication: dict[str, int]) -> ClusterSpec:
        return ClusterSpec.model_validate(
            {
                "name": "c",
                "environment": "prod",
                "numHistoryShards": 512,
                "persistence": {
                    "kind": "scylla",
                    "datacenter": "dc1",
                    "replication": replication,
                    "tls": tls,
                },
                "visibility": {"database": "temporal_visibility", "tls": tls},
            }
        )

    assert scylla.cql_store(prod({"dc1": 3})).replication_for("prod") == {"dc1": 3}
    assert scylla.cql_store(prod({})).replication_for("prod") == {"dc1": 3}
    with pytest.raises(ValidationError, match=r"replication \{'dc2': 1\} in production"):
        prod({"dc1": 3, "dc2": 1})


def test_bootstrap_refuses_a_postgres_cluster() -> None:
    with pytest.raises(scylla.BootstrapError, match="no keyspace to bootstrap"):
        scylla.cql_store(ClusterSpec.local("pg", "postgres"))


def test_a_store_user_without_its_password_variable_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = CassandraStore(user="temporal", password_env="HAUL_TEST_NO_SUCH_PASSWORD")
    monkeypatch.delenv("HAUL_TEST_NO_SUCH_PASSWORD", raising=False)
    with (
        pytest.raises(scylla.BootstrapError, match="HAUL_TEST_NO_SUCH_PASSWORD is not set"),
        scylla.session(store),
    ):
        pass


class _Rows:
    def __init__(self, rows: list[Any]) -> None:
        self._rows = rows

    def one(self) -> Any:
        return self._rows[0] if self._rows else None

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)


class _FakeSession:
    """Answers the system-table queries the bootstrap asks, as a fresh ScyllaDB or Cassandra
    node would, and records every other statement; an unexpected system query is an error."""

    def __init__(self, scylla_server: bool) -> None:
        self.scylla_server = scylla_server
        self.applied: list[str] = []

    def execute(self, query: str, params: tuple[Any, ...] | None = None) -> _Rows:
        if "table_name = 'scylla_local'" in query:
            return _Rows([SimpleNamespace(table_name="scylla_local")] if self.scylla_server else [])
        if query.startswith("SELECT replication FROM system_schema.keyspaces"):
            return _Rows([])  # no keyspace yet
        if query.startswith("SELECT table_name FROM system_schema.tables"):
            return _Rows([])  # no tracking table yet
        assert not query.startswith("SELECT"), f"the double does not know {query!r}"
        self.applied.append(query)
        return _Rows([])


def _bootstrap_against(monkeypatch: pytest.MonkeyPatch, scylla_server: bool) -> list[str]:
    fake = _FakeSession(scylla_server)

    @contextmanager
    def fake_session(store: CassandraStore, timeout: float = 30.0) -> Iterator[_FakeSession]:
        yield fake

    monkeypatch.setattr(scylla, "session", fake_session)
    spec = ClusterSpec.local("cs", "cassandra", cassandra_port=19042, datacenter="dc1")
    assert scylla.bootstrap(spec) == ["0001_keyspace.cql", "0002_haul_tables.cql"]
    return fake.applied


def test_bootstrap_turns_tablets_off_on_scylla(monkeypatch: pytest.MonkeyPatch) -> None:
    keyspace, *tables = _bootstrap_against(monkeypatch, scylla_server=True)
    assert keyspace.startswith("CREATE KEYSPACE IF NOT EXISTS temporal")
    assert "{'class': 'NetworkTopologyStrategy', 'dc1': 1}" in keyspace
    assert keyspace.endswith("AND tablets = {'enabled': false}")
    assert tables and not any("tablets" in t for t in tables)


def test_bootstrap_leaves_tablets_out_on_cassandra(monkeypatch: pytest.MonkeyPatch) -> None:
    applied = _bootstrap_against(monkeypatch, scylla_server=False)
    assert applied[0].startswith("CREATE KEYSPACE IF NOT EXISTS temporal")
    assert not any("tablets" in stmt for stmt in applied)


def test_replication_mismatch_names_what_differs() -> None:
    nts = {"class": scylla.NTS, "dc1": "3"}
    assert scylla.replication_mismatch(nts, {"dc1": 3}) is None
    assert "the spec asks for {'dc1': 3, 'dc2': 3}" in (
        scylla.replication_mismatch(nts, {"dc1": 3, "dc2": 3}) or ""
    )
    simple = {"class": "org.apache.cassandra.locator.SimpleStrategy", "replication_factor": "3"}
    assert "SimpleStrategy" in (scylla.replication_mismatch(simple, {"dc1": 3}) or "")


def test_the_rendered_spec_file_reads_back_as_the_same_spec(tmp_path: Path) -> None:
    spec = ClusterSpec.local("cs", "cassandra", cassandra_port=19042, datacenter="dc7")
    path = tmp_path / "cluster.yaml"
    path.write_text(render_spec_file(spec))
    assert load_spec(path) == spec
    assert "numHistoryShards: 4" in path.read_text()


def test_the_command_takes_exactly_one_spec_source(tmp_path: Path) -> None:
    runner = CliRunner()
    neither = runner.invoke(db_app, ["scylla-bootstrap"])
    assert neither.exit_code == 2 and "exactly one of --cluster and --spec" in neither.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: Not A Name\n")
    refused = runner.invoke(db_app, ["scylla-bootstrap", "--spec", str(bad)])
    assert refused.exit_code == 2 and "cluster name 'Not A Name' is not valid" in refused.output

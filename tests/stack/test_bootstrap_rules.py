"""The Scylla bootstrap's settings and rendering, without a server."""

from __future__ import annotations

import pytest

from app.stack import scylla


def test_replication_settings_parse_per_datacenter() -> None:
    assert scylla.parse_replication("dc1=3, dc2:3") == {"dc1": 3, "dc2": 3}
    with pytest.raises(scylla.BootstrapError, match="datacenter=factor"):
        scylla.parse_replication("dc1")


def test_target_refuses_a_local_datacenter_without_replication() -> None:
    with pytest.raises(scylla.BootstrapError, match="'dc9' has no replication factor"):
        scylla.CqlTarget(
            hosts=["h"], port=9042, keyspace="temporal", datacenter="dc9", replication={"dc1": 3}
        )
    with pytest.raises(scylla.BootstrapError, match="not a valid CQL name"):
        scylla.CqlTarget(
            hosts=["h"], port=9042, keyspace="x;drop", datacenter="dc1", replication={"dc1": 3}
        )


def test_keyspace_file_renders_nts_and_tablets_off_for_scylla() -> None:
    keyspace = scylla.load()[0]
    values = {
        "keyspace": "temporal",
        "replication": scylla.replication_literal({"dc2": 3, "dc1": 3}),
        "tablets": "AND tablets = {'enabled': false}",
    }
    (stmt,) = keyspace.statements(values)
    assert stmt.startswith("CREATE KEYSPACE IF NOT EXISTS temporal")
    assert "{'class': 'NetworkTopologyStrategy', 'dc1': 3, 'dc2': 3}" in stmt
    assert stmt.endswith("AND tablets = {'enabled': false}")
    (plain,) = keyspace.statements({**values, "tablets": ""})
    assert "tablets" not in plain


def test_replication_mismatch_names_what_differs() -> None:
    nts = {"class": scylla.NTS, "dc1": "3"}
    assert scylla.replication_mismatch(nts, {"dc1": 3}) is None
    assert "settings ask for {'dc1': 3, 'dc2': 3}" in (
        scylla.replication_mismatch(nts, {"dc1": 3, "dc2": 3}) or ""
    )
    simple = {"class": "org.apache.cassandra.locator.SimpleStrategy", "replication_factor": "3"}
    assert "SimpleStrategy" in (scylla.replication_mismatch(simple, {"dc1": 3}) or "")

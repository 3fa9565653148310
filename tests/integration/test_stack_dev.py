"""`haul stack` on the dev backend: idempotent up, named clusters, port clashes, status."""

from __future__ import annotations

import socket

import pytest
from typer.testing import CliRunner

from app.cli.stack import app as stack_app
from app.core.procs import PortInUseError, pid_alive
from app.stack import cluster
from app.stack.registry import ClusterRecord, Registry


def test_up_again_is_a_no_op_on_a_running_cluster(dev_cluster: ClusterRecord) -> None:
    again = cluster.up(dev_cluster.name, "dev", headless=True)
    assert again.pids == Registry().get(dev_cluster.name).pids  # type: ignore[union-attr]
    assert again.pids["temporal"] == dev_cluster.pids["temporal"]
    assert set(again.namespaces) == {"default", "haul"}


def test_a_taken_port_is_named_and_nothing_starts(dev_cluster: ClusterRecord) -> None:
    base = dev_cluster.port_base + 40 * 20
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", base))  # the new cluster's frontend port
        squatter.listen()
        with pytest.raises(PortInUseError, match=rf"port {base} \(frontend\)"):
            cluster.up("it-clash", "dev", port_base=base, headless=True)
    assert Registry().get("it-clash") is None


def test_second_cluster_runs_beside_and_down_stops_only_its_pids(
    dev_cluster: ClusterRecord,
) -> None:
    other = cluster.up("it-second", "dev", headless=True)
    try:
        assert other.port_base != dev_cluster.port_base
        result = CliRunner().invoke(stack_app, ["status"])
        assert result.exit_code == 0, result.output
        for rec in (dev_cluster, other):
            assert rec.frontend in result.output
            assert rec.metrics_url in result.output
        # The DSN is shown with its password masked, never in the clear.
        assert other.postgres_password not in result.output
        assert f"haul:****@127.0.0.1:{other.port('postgres')}" in result.output
    finally:
        stopped = cluster.down("it-second", purge=True)
    assert not any(pid_alive(pid) for pid in stopped.pids.values())
    assert pid_alive(dev_cluster.pids["temporal"]) and pid_alive(dev_cluster.pids["postgres"])
    assert Registry().get("it-second") is None

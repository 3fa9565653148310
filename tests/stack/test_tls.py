"""`--tls`: Postgres serves TLS from a generated CA; a wrong CA fails with a clear message."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.procs import pid_alive, stop_pid
from app.stack import check, cluster, tls
from app.stack.registry import ClusterRecord, Registry

TLS = "st-tls"


@pytest.fixture(scope="module")
def tls_cluster() -> Iterator[ClusterRecord]:
    rec = cluster.up(TLS, "postgres", tls=True, timeout=180)
    try:
        yield rec
    finally:
        cluster.down(TLS, purge=True)


def test_server_config_verifies_the_host_against_the_generated_ca(
    tls_cluster: ClusterRecord,
) -> None:
    spec = cluster.cluster_spec(tls_cluster)
    for store in (spec.persistence, spec.visibility):
        assert store.tls.enabled and store.tls.enable_host_verification
        assert store.tls.ca_file == str(tls_cluster.tls_dir / "ca.pem")
        assert store.tls.server_name == "localhost"
    text = (tls_cluster.config_dir / "temporal.yaml").read_text()
    assert "enableHostVerification: true" in text and "serverName: localhost" in text


async def test_check_reports_tls_on_and_plaintext_refused(tls_cluster: ClusterRecord) -> None:
    results = await asyncio.to_thread(check.run_checks, tls_cluster)
    by_name = {r.name: r for r in results}
    assert all(r.ok for r in results), results
    assert "ssl=on" in by_name["postgres TLS"].detail
    assert "plaintext TCP refused" in by_name["postgres TLS"].detail


async def test_a_wrong_ca_fails_with_a_clear_message(
    tls_cluster: ClusterRecord, tmp_path: Path
) -> None:
    ca = tls_cluster.tls_dir / "ca.pem"
    good = tmp_path / "good-ca.pem"
    shutil.copyfile(ca, good)
    other, _ = tls.generate_ca(tmp_path / "other", "not the cluster's CA")
    rec = Registry().get(TLS)
    assert rec is not None
    stop_pid(rec.pids["temporal"])
    shutil.copyfile(other, ca)
    try:
        with pytest.raises(tls.TLSError) as err:
            await asyncio.to_thread(cluster.up, TLS, "postgres")
        msg = str(err.value)
        assert "does not verify against CA file" in msg and str(ca) in msg
        assert "certificate verify failed" in msg
        after = Registry().get(TLS)
        assert after is not None and not pid_alive(after.pids["temporal"])
    finally:
        shutil.copyfile(good, ca)
    back = await asyncio.to_thread(cluster.up, TLS, "postgres")
    assert pid_alive(back.pids["temporal"])

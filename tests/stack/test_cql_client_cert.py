"""CQL client certificates against a real Cassandra: the `--tls` cassandra cluster requires one
from the cluster CA (`require_client_auth`, as production Scylla does), temporal-server presents
the one its ClusterSpec names, and Cassandra itself refuses every other client.

The session's Cassandra cluster (`st-cs`, booted with `--tls`) serves every test here.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from pathlib import Path

import pytest
import yaml
from cassandra.cluster import NoHostAvailable

from app.domains.sample.models import GreetingInput
from app.domains.sample.workflows import GreetingWorkflow
from app.platform.client import HaulClient
from app.stack import cluster, scylla, tls
from app.stack.registry import ClusterRecord
from app.stack.spec import CassandraStore, TLSSettings
from tests.stack.conftest import RESULT_TIMEOUT


def _store(rec: ClusterRecord, **tls_update: str | None) -> CassandraStore:
    store = scylla.cql_store(cluster.cluster_spec(rec))
    return store.model_copy(update={"tls": store.tls.model_copy(update=tls_update)})


def _release(store: CassandraStore) -> str:
    with scylla.session(store, timeout=10) as sess:
        return str(sess.execute("select release_version from system.local").one().release_version)


def _refused(store: CassandraStore) -> list[BaseException]:
    """Connect with store's TLS settings; return the errors the driver got from each host."""
    with pytest.raises(NoHostAvailable) as err:
        _release(store)
    errors = list(err.value.errors.values())
    assert errors, err.value
    return errors


async def test_temporal_server_runs_a_workflow_through_the_cql_client_certificate(
    cs_cluster: ClusterRecord, cs_client: HaulClient, run_id: str
) -> None:
    files = tls.ensure_certs(cs_cluster.tls_dir)
    cass = yaml.safe_load((cs_cluster.cassandra_dir / "conf" / "cassandra.yaml").read_text())
    enc = cass["client_encryption_options"]
    assert enc["enabled"] and not enc["optional"] and enc["require_client_auth"] is True
    assert enc["truststore"] == str(files.ca)
    # The server config is a template (the password is `{{ env ... }}`); read it as YAML.
    text = (cs_cluster.config_dir / "temporal.yaml").read_text()
    server = yaml.safe_load(re.sub(r"\{\{.*?\}\}", '""', text))
    store_tls = server["persistence"]["datastores"]["default"]["cassandra"]["tls"]
    assert store_tls == {
        "enabled": True,
        "enableHostVerification": True,
        "caFile": str(files.ca),
        "serverName": tls.SERVER_NAME,
        "certFile": str(files.cql_cert),
        "keyFile": str(files.cql_key),
    }
    handle = await cs_client.start(
        GreetingWorkflow.run, GreetingInput(name=run_id), f"cql-cert-{run_id}"
    )
    result = await asyncio.wait_for(handle.result(), timeout=RESULT_TIMEOUT)
    assert result.greeting == f"Hello, {run_id}!"
    # The run is in this Cassandra, read back with the same certificate.
    with scylla.session(_store(cs_cluster)) as sess:
        rows = sess.execute(
            "SELECT run_id FROM temporal.executions WHERE workflow_id = %s ALLOW FILTERING",
            (handle.id,),
        ).all()
    assert rows


def test_a_session_without_a_client_certificate_is_refused_by_cassandra(
    cs_cluster: ClusterRecord,
) -> None:
    assert _release(_store(cs_cluster)).startswith("5.0")
    # Same CA, same server name, no client certificate: Cassandra ends the handshake (a
    # "certificate required" alert, or the connection closed before the client reads it).
    errors = _refused(_store(cs_cluster, cert_file=None, key_file=None))
    assert all(isinstance(e, ssl.SSLError) for e in errors), errors


def test_a_plaintext_cql_client_gets_nowhere(cs_cluster: ClusterRecord) -> None:
    store = scylla.cql_store(cluster.cluster_spec(cs_cluster))
    _refused(store.model_copy(update={"tls": TLSSettings()}))


def test_a_client_certificate_from_another_ca_is_refused(
    cs_cluster: ClusterRecord, tmp_path: Path
) -> None:
    other_ca, other_key = tls.generate_ca(tmp_path, "not the cluster's CA")
    cert, key = tls.issue_client_cert(tmp_path, other_ca, other_key, tls.CQL_CLIENT_NAME)
    errors = _refused(_store(cs_cluster, cert_file=str(cert), key_file=str(key)))
    assert all(isinstance(e, ssl.SSLError) for e in errors), errors

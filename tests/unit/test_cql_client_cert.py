"""The CQL session presents the store's client certificate (Scylla's require_client_auth)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from app.stack import cassandra, cluster, schema, scylla, tls
from app.stack.registry import ClusterRecord
from app.stack.spec import CassandraStore, TLSSettings
from app.stack.spec_render import ListenConfig, render_helm_values, render_server_config


def _store(ca: Path, cert: Path, key: Path) -> CassandraStore:
    return CassandraStore(
        tls=TLSSettings(
            enabled=True,
            ca_file=str(ca),
            enable_host_verification=True,
            cert_file=str(cert),
            key_file=str(key),
        )
    )


def test_the_ssl_context_loads_the_client_certificate(tmp_path: Path) -> None:
    ca, ca_key = tls.generate_ca(tmp_path, "test CA")
    cert, key = tls.issue_client_cert(tmp_path, ca, ca_key, "temporal")
    ctx = scylla._ssl_context(_store(ca, cert, key))
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname


def test_a_client_key_that_does_not_match_its_certificate_is_refused(tmp_path: Path) -> None:
    ca, ca_key = tls.generate_ca(tmp_path, "test CA")
    cert, _ = tls.issue_client_cert(tmp_path, ca, ca_key, "temporal")
    _, other_key = tls.issue_server_cert(tmp_path, ca, ca_key)
    with pytest.raises(ssl.SSLError):
        scylla._ssl_context(_store(ca, cert, other_key))


# ---- the local `--tls` Cassandra and its clients ---------------------------------------------


def _tls_record(tmp_path: Path) -> ClusterRecord:
    return ClusterRecord(
        name="u-cql", backend="cassandra", port_base=21700, data_dir=str(tmp_path), tls=True
    )


def test_a_tls_cassandra_requires_a_client_certificate_from_the_cluster_ca(
    tmp_path: Path,
) -> None:
    rec = _tls_record(tmp_path)
    store = scylla.cql_store(cluster.cluster_spec(rec))
    conf = cassandra.write_config(rec, store)
    enc = yaml.safe_load((conf / "cassandra.yaml").read_text())["client_encryption_options"]
    files = tls.ensure_certs(rec.tls_dir)
    assert enc["enabled"] is True and enc["optional"] is False
    assert enc["require_client_auth"] is True
    assert enc["truststore"] == str(files.ca)
    assert enc["ssl_context_factory"]["class_name"] == tls.PEM_SSL_CONTEXT_FACTORY
    keystore = Path(enc["keystore"])
    assert keystore.stat().st_mode & 0o077 == 0  # an unencrypted key: owner-only
    assert keystore.read_bytes() == files.key.read_bytes() + files.cert.read_bytes()


def test_a_plaintext_cassandra_has_no_client_encryption(tmp_path: Path) -> None:
    rec = _tls_record(tmp_path).model_copy(update={"tls": False})
    store = scylla.cql_store(cluster.cluster_spec(rec))
    conf = cassandra.write_config(rec, store)
    assert "client_encryption_options" not in yaml.safe_load((conf / "cassandra.yaml").read_text())
    assert not store.tls.enabled


def test_every_cql_client_of_a_tls_cluster_presents_the_cql_certificate(tmp_path: Path) -> None:
    rec = _tls_record(tmp_path)
    spec = cluster.cluster_spec(rec)
    files = tls.ensure_certs(rec.tls_dir)
    store = scylla.cql_store(spec)
    wanted = {
        "enabled": True,
        "enableHostVerification": True,
        "caFile": str(files.ca),
        "serverName": tls.SERVER_NAME,
        "certFile": str(files.cql_cert),
        "keyFile": str(files.cql_key),
    }
    # temporal-server, through the renderer infra uses for Scylla's Helm values too.
    server = render_server_config(spec, ListenConfig())
    assert server["persistence"]["datastores"]["default"]["cassandra"]["tls"] == wanted
    helm = render_helm_values(spec)["server"]["config"]["persistence"]["datastores"]
    assert helm["default"]["cassandra"]["tls"] == wanted
    # temporal-cassandra-tool.
    flags = schema.cql_tls_flags(store)
    assert flags[flags.index("--tls-cert-file") + 1] == str(files.cql_cert)
    assert flags[flags.index("--tls-key-file") + 1] == str(files.cql_key)
    # haul's cassandra-driver sessions (check, bootstrap, the startup wait).
    ctx = scylla._ssl_context(store)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    # The CQL certificate is its own, for client auth only, from the cluster CA.
    cert = x509.load_pem_x509_certificate(files.cql_cert.read_bytes())
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == tls.CQL_CLIENT_NAME
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.issuer == x509.load_pem_x509_certificate(files.ca.read_bytes()).subject


def test_postgres_stores_of_a_tls_cassandra_cluster_present_no_cql_certificate(
    tmp_path: Path,
) -> None:
    spec = cluster.cluster_spec(_tls_record(tmp_path))
    assert spec.visibility.tls.enabled and spec.visibility.tls.cert_file is None

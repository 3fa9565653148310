"""The CQL session presents the store's client certificate (Scylla's require_client_auth)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from app.stack import scylla, tls
from app.stack.spec import CassandraStore, TLSSettings


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

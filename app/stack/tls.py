"""TLS for a local cluster's Postgres, Cassandra and frontend, from a CA that haul generates
(`haul stack up --tls`, and `--mtls` for client certificates at the frontend).

RDS Postgres 15+ forces SSL and production verifies the server against the RDS CA bundle; the
local stack does the same with its own CA: Postgres serves a certificate the CA signed (for
`localhost` and 127.0.0.1) and accepts TCP connections only over TLS, and temporal-server
connects with `tls.enabled`, `enableHostVerification`, `caFile` and `serverName`.

Production Scylla requires a client certificate (`require_client_auth`), so a TLS cluster's
Cassandra does too: it serves the same server certificate on CQL, trusts only the cluster CA, and
every CQL client (temporal-server, temporal-cassandra-tool, haul's own sessions) presents the
`temporal-cql` certificate the CA issued.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from app.core.files import private_dir, write_private
from app.stack.spec import TLSSettings

SERVER_NAME = "localhost"
CLIENT_NAME = "haul-client"
# The CQL client certificate's name, as infra's Scylla CA issues Temporal's.
CQL_CLIENT_NAME = "temporal-cql"
VALIDITY = dt.timedelta(days=365)
# Cassandra 4.1+ reads PEM key material with this factory (file-based: keystore/truststore).
PEM_SSL_CONTEXT_FACTORY = "org.apache.cassandra.security.PEMBasedSslContextFactory"


def ssl_bindir() -> Path:
    """A PostgreSQL server build with SSL support, for `--tls` clusters.

    pgserver's PostgreSQL is built without OpenSSL, so a TLS cluster runs the distribution's
    PostgreSQL server (Debian: `apt-get install postgresql`), or the one in
    $HAUL_POSTGRES_SSL_BINDIR.
    """
    import subprocess

    from app.core.settings import StackSettings

    if configured := StackSettings().postgres_ssl_bindir:
        candidates = [configured]
    else:
        found = Path("/usr/lib/postgresql").glob("*/bin")
        candidates = sorted(found, key=lambda p: int(p.parent.name), reverse=True)
    for bindir in candidates:
        if not (bindir / "postgres").exists() or not (bindir / "pg_config").exists():
            continue
        conf = subprocess.run(
            [str(bindir / "pg_config"), "--configure"], capture_output=True, text=True
        ).stdout
        if "--with-openssl" in conf or "--with-ssl=openssl" in conf:
            return bindir
    raise TLSError(
        "--tls needs a PostgreSQL server built with SSL, and pgserver's is built without it; "
        "install the distribution's server (`apt-get install postgresql` on Debian/Ubuntu) or "
        "set HAUL_POSTGRES_SSL_BINDIR to the bin/ directory of a PostgreSQL built with OpenSSL"
    )


class TLSError(RuntimeError):
    """The server's certificate does not verify against the configured CA."""


@dataclass(frozen=True)
class TLSFiles:
    ca: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path
    cql_cert: Path
    cql_key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "haul local stack"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """A private key file, owner-only from the moment it exists."""
    write_private(
        path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def generate_ca(directory: Path, common_name: str) -> tuple[Path, Path]:
    """A self-signed CA certificate and key in directory: (ca.pem, ca-key.pem)."""
    private_dir(directory)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    ca, ca_key = directory / "ca.pem", directory / "ca-key.pem"
    ca.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(ca_key, key)
    return ca, ca_key


def _issue(
    ca: Path,
    ca_key: Path,
    common_name: str,
    usage: x509.ObjectIdentifier,
    san: list[x509.GeneralName],
    out: Path,
    out_key: Path,
) -> tuple[Path, Path]:
    ca_cert = x509.load_pem_x509_certificate(ca.read_bytes())
    signer = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
    assert isinstance(signer, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    cert = (
        builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
            critical=False,
        )
        .sign(signer, hashes.SHA256())
    )
    out.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(out_key, key)
    return out, out_key


def issue_server_cert(
    directory: Path,
    ca: Path,
    ca_key: Path,
    *,
    dns_names: tuple[str, ...] = (SERVER_NAME,),
    ips: tuple[str, ...] = ("127.0.0.1",),
) -> tuple[Path, Path]:
    """A server certificate signed by the CA, for localhost and 127.0.0.1 unless other names
    are given (tests present one for another name): (server.pem, key)."""
    san: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    san += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    return _issue(
        ca,
        ca_key,
        dns_names[0],
        ExtendedKeyUsageOID.SERVER_AUTH,
        san,
        directory / "server.pem",
        directory / "server-key.pem",
    )


def issue_client_cert(
    directory: Path,
    ca: Path,
    ca_key: Path,
    common_name: str = CLIENT_NAME,
    *,
    stem: str = "client",
) -> tuple[Path, Path]:
    """A client certificate signed by the CA: (<stem>.pem, <stem>-key.pem). At an mTLS
    frontend it proves only that the caller holds a cluster certificate; what it may do comes
    from its JWT (app.stack.authz). At Cassandra it is what lets a client in at all."""
    return _issue(
        ca,
        ca_key,
        common_name,
        ExtendedKeyUsageOID.CLIENT_AUTH,
        [],
        directory / f"{stem}.pem",
        directory / f"{stem}-key.pem",
    )


def ensure_certs(directory: Path) -> TLSFiles:
    """The cluster's CA and server certificate, generated on first use and kept after."""
    ca, ca_key = directory / "ca.pem", directory / "ca-key.pem"
    cert, key = directory / "server.pem", directory / "server-key.pem"
    if not (ca.exists() and ca_key.exists()):
        ca, ca_key = generate_ca(directory, "haul local CA")
        for issued in ("server.pem", "client.pem", "cql-client.pem"):
            (directory / issued).unlink(missing_ok=True)
    if not (cert.exists() and key.exists()):
        cert, key = issue_server_cert(directory, ca, ca_key)
    client, client_key = directory / "client.pem", directory / "client-key.pem"
    if not (client.exists() and client_key.exists()):
        client, client_key = issue_client_cert(directory, ca, ca_key)
    cql, cql_key = directory / "cql-client.pem", directory / "cql-client-key.pem"
    if not (cql.exists() and cql_key.exists()):
        cql, cql_key = issue_client_cert(directory, ca, ca_key, CQL_CLIENT_NAME, stem="cql-client")
    return TLSFiles(
        ca=ca,
        cert=cert,
        key=key,
        client_cert=client,
        client_key=client_key,
        cql_cert=cql,
        cql_key=cql_key,
    )


def settings_for(files: TLSFiles) -> TLSSettings:
    """ClusterSpec TLS settings for temporal-server: verify the host against our CA."""
    return TLSSettings(
        enabled=True,
        ca_file=str(files.ca),
        enable_host_verification=True,
        server_name=SERVER_NAME,
    )


def cql_settings_for(files: TLSFiles) -> TLSSettings:
    """ClusterSpec TLS settings for the CQL store: verify Cassandra against our CA and present
    the CQL client certificate, as temporal-server does against Scylla in production."""
    return settings_for(files).model_copy(
        update={"cert_file": str(files.cql_cert), "key_file": str(files.cql_key)}
    )


def cassandra_client_encryption(files: TLSFiles, conf_dir: Path) -> dict[str, Any]:
    """cassandra.yaml `client_encryption_options`: CQL only over TLS, with the server
    certificate, and a client certificate from the cluster CA required of every client.

    Cassandra's PEM factory reads the key and its certificate from one file (the keystore) and
    the trusted CAs from another; the key is unencrypted, so it is written owner-only.
    """
    keystore = conf_dir / "cql-keystore.pem"
    write_private(keystore, files.key.read_bytes() + files.cert.read_bytes())
    return {
        "enabled": True,
        "optional": False,
        "ssl_context_factory": {"class_name": PEM_SSL_CONTEXT_FACTORY},
        "keystore": str(keystore),
        "truststore": str(files.ca),
        "require_client_auth": True,
    }


def prepare_postgres(pgdata: Path, files: TLSFiles) -> dict[str, str]:
    """Install the server certificate into pgdata, allow TCP only over TLS, and return the
    postgresql.conf settings that turn ssl on."""
    cert, key = pgdata / "server.crt", pgdata / "server.key"
    shutil.copyfile(files.cert, cert)
    write_private(key, files.key.read_bytes())
    hba = pgdata / "pg_hba.conf"
    lines = []
    for line in hba.read_text().splitlines():
        fields = line.split()
        if fields and fields[0] == "host":
            line = "hostssl" + line[len("host") :]
        lines.append(line)
    hba.write_text("\n".join(lines) + "\n")
    return {
        "ssl": "on",
        "ssl_cert_file": str(cert),
        "ssl_key_file": str(key),
        "ssl_min_protocol_version": "TLSv1.2",
    }


def verify_postgres(
    host: str, port: int, tls: TLSSettings, user: str, password: str, database: str
) -> None:
    """Connect the way temporal-server will (verify-full against tls.ca_file), so a wrong CA
    fails here with a clear message rather than deep in the server's log."""
    import psycopg

    params = {
        "host": tls.server_name or host,
        "hostaddr": host,
        "port": port,
        "user": user,
        "password": password,
        "dbname": database,
        "connect_timeout": 5,
        "sslmode": "verify-full" if tls.enable_host_verification else "verify-ca",
    }
    if tls.ca_file:
        params["sslrootcert"] = tls.ca_file
    try:
        with psycopg.connect(**params) as conn:  # type: ignore[arg-type]
            conn.execute("select 1")
    except psycopg.OperationalError as err:
        text = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
        if "certificate" in str(err).lower() or "ssl" in str(err).lower():
            raise TLSError(
                f"Postgres at {host}:{port} presented a TLS certificate that does not verify "
                f"against CA file {tls.ca_file} for server name {params['host']!r} ({text}); "
                "point tls.ca_file at the CA that issued the server's certificate (the RDS CA "
                "bundle in production; for a local cluster the ca.pem that `haul stack up "
                "--tls` generated in the cluster's tls/ directory)"
            ) from err
        raise

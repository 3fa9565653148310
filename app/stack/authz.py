"""Who may do what on a frontend that requires client certificates: JWT roles for the
server's `default` authorizer and claim mapper.

With mTLS alone, any certificate from the cluster's CA is a full admin (the server's no-op
authorizer allows everything). So an mTLS cluster also turns on `global.authorization`: the
claim mapper reads `Authorization: Bearer <JWT>`, checks its signature against the JWKS
at `jwtKeyProvider.keySourceURIs` (a file URI or HTTP), and maps the `permissions` claim
(`<namespace>:<role>`, or `temporal-system:<role>` for the whole cluster) to roles. A caller
with a certificate but no token gets no role and is denied.

The local stack (`haul stack up --mtls`) and infra/ both use this module: the same key type,
JWKS, roles and server config, so what is tested locally is what is deployed.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from app.core.files import private_dir, write_private

# RS256: PKCS#1 v1.5 signatures are deterministic, so infra's tokens do not change on every
# `pulumi up` (ECDSA's would). The server accepts RSA and ECDSA keys from a JWKS.
ALGORITHM = "RS256"
PERMISSIONS_CLAIM = "permissions"
SYSTEM_SCOPE = "temporal-system"  # the server's name for cluster-wide permissions
KEY_REFRESH = "1m"
LOCAL_TOKEN_TTL = dt.timedelta(days=365)


@dataclass(frozen=True)
class Role:
    """A caller kind and the permissions its token carries."""

    name: str
    permissions: tuple[str, ...]


def worker_role(namespace: str) -> Role:
    """Workers and app clients: start, signal, poll and read in their own namespace only;
    no namespace admin calls (register, update, search attributes) and no other namespace."""
    return Role(name="worker", permissions=(f"{namespace}:write",))


ADMIN_ROLE = Role(name="admin", permissions=(f"{SYSTEM_SCOPE}:admin",))


def generate_key() -> bytes:
    """A new RSA signing key, PEM (PKCS#8)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def key_id(private_pem: bytes | str) -> str:
    """A stable key ID: the RFC 7638 thumbprint of the public key."""
    public = _private(private_pem).public_key()
    jwk = json.loads(RSAAlgorithm.to_jwk(public))
    canonical = json.dumps({k: jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _private(private_pem: bytes | str) -> rsa.RSAPrivateKey:
    data = private_pem.encode() if isinstance(private_pem, str) else private_pem
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the JWT signing key must be an RSA private key (PEM)")
    return key


def jwks(private_pem: bytes | str) -> str:
    """The JSON Web Key Set the server verifies tokens with (public key only)."""
    jwk = json.loads(RSAAlgorithm.to_jwk(_private(private_pem).public_key()))
    jwk.update(kid=key_id(private_pem), use="sig", alg=ALGORITHM)
    return json.dumps({"keys": [jwk]}, sort_keys=True)


def mint(
    private_pem: bytes | str,
    subject: str,
    role: Role,
    *,
    expires: dt.datetime | None = None,
) -> str:
    """A signed token for `subject` carrying the role's permissions. Without `expires` the
    token is deterministic for a key (infra rotates by replacing the key)."""
    claims: dict[str, Any] = {"sub": subject, PERMISSIONS_CLAIM: list(role.permissions)}
    if expires is not None:
        claims["exp"] = int(expires.timestamp())
    return jwt.encode(
        claims, _private(private_pem), algorithm=ALGORITHM, headers={"kid": key_id(private_pem)}
    )


def server_authorization(key_source_uri: str) -> dict[str, Any]:
    """temporal-server's `global.authorization`: the default JWT claim mapper and authorizer,
    with keys from `key_source_uri` (file:// or https://)."""
    return {
        "jwtKeyProvider": {"keySourceURIs": [key_source_uri], "refreshInterval": KEY_REFRESH},
        "permissionsClaimName": PERMISSIONS_CLAIM,
        "authorizer": "default",
        "claimMapper": "default",
    }


@dataclass(frozen=True)
class LocalAuth:
    """A local mTLS cluster's signing key, JWKS file and one token per role."""

    jwks_file: Path
    worker_token: str
    admin_token: str

    @property
    def key_source_uri(self) -> str:
        return self.jwks_file.resolve().as_uri()


def ensure_local_auth(directory: Path, namespace: str) -> LocalAuth:
    """The cluster's signing key (made once, owner-only), its JWKS, and fresh tokens."""
    private_dir(directory)
    key_file, jwks_file = directory / "jwt-key.pem", directory / "jwks.json"
    if not key_file.exists():
        write_private(key_file, generate_key())
    pem = key_file.read_bytes()
    jwks_file.write_text(jwks(pem))
    expires = dt.datetime.now(dt.UTC) + LOCAL_TOKEN_TTL
    return LocalAuth(
        jwks_file=jwks_file,
        worker_token=mint(pem, f"haul-worker@{namespace}", worker_role(namespace), expires=expires),
        admin_token=mint(pem, "haul-admin", ADMIN_ROLE, expires=expires),
    )

"""JWT roles and the frontend's security config: what the server's claim mapper will read."""

from __future__ import annotations

import datetime as dt
import json
import stat
from pathlib import Path

import jwt
import pytest
from pydantic import ValidationError

from app.core import envconfig
from app.stack import authz
from app.stack.spec import ClusterSpec
from app.stack.spec_render import FrontendSecurity, ListenConfig, render_server_config


def _verify(token: str, jwks_text: str) -> dict:
    """Verify as the server does: the key named by the token's `kid` in the JWKS."""
    keys = {k["kid"]: jwt.PyJWK(k) for k in json.loads(jwks_text)["keys"]}
    kid = jwt.get_unverified_header(token)["kid"]
    return jwt.decode(token, keys[kid].key, algorithms=[authz.ALGORITHM])


def test_tokens_verify_against_the_jwks_and_carry_each_roles_permissions() -> None:
    key = authz.generate_key()
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    keys = authz.jwks(key)
    worker = _verify(authz.mint(key, "w", authz.worker_role("haul"), expires=later), keys)
    admin = _verify(authz.mint(key, "a", authz.ADMIN_ROLE, expires=later), keys)
    assert worker["permissions"] == ["haul:write"] and worker["sub"] == "w"
    assert admin["permissions"] == ["temporal-system:admin"]
    assert "PRIVATE" not in authz.jwks(key) and '"d"' not in authz.jwks(key)


def test_a_token_from_another_key_or_past_its_expiry_does_not_verify() -> None:
    key, other = authz.generate_key(), authz.generate_key()
    token = authz.mint(other, "x", authz.ADMIN_ROLE)
    # Same kid header forged onto another key's signature: the signature check fails.
    header = jwt.get_unverified_header(token)
    forged = jwt.encode(
        {"sub": "x", "permissions": ["temporal-system:admin"]},
        authz._private(other),
        algorithm=authz.ALGORITHM,
        headers={**header, "kid": authz.key_id(key)},
    )
    with pytest.raises(jwt.InvalidSignatureError):
        _verify(forged, authz.jwks(key))
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    with pytest.raises(jwt.ExpiredSignatureError):
        _verify(authz.mint(key, "x", authz.ADMIN_ROLE, expires=past), authz.jwks(key))


def test_infra_tokens_are_stable_for_a_key() -> None:
    key = authz.generate_key()
    role = authz.worker_role("haul")
    assert authz.mint(key, "w", role) == authz.mint(key, "w", role)


def test_an_mtls_frontend_without_an_authorizer_is_refused() -> None:
    files = dict(cert_file="c", key_file="k", ca_file="ca", server_name="localhost")
    with pytest.raises(ValidationError, match="would be an admin"):
        FrontendSecurity(**files, require_client_auth=True)
    FrontendSecurity(**files)  # TLS without client certificates needs no authorizer


def test_the_authorizer_config_routes_system_workers_through_the_internal_frontend() -> None:
    spec = ClusterSpec.local("c1")
    front = FrontendSecurity(
        cert_file="c",
        key_file="k",
        ca_file="ca",
        server_name="localhost",
        require_client_auth=True,
        key_source_uri="file:///keys/jwks.json",
    )
    with pytest.raises(ValueError, match="internal frontend"):
        render_server_config(spec, ListenConfig.from_base(20000, "dc.yaml"), front)
    listen = ListenConfig.from_base(
        20000, "dc.yaml", internal_frontend_grpc=20015, internal_frontend_membership=20016
    )
    config = render_server_config(spec, listen, front)
    auth = config["global"]["authorization"]
    assert auth["authorizer"] == "default" and auth["claimMapper"] == "default"
    assert auth["jwtKeyProvider"]["keySourceURIs"] == ["file:///keys/jwks.json"]
    assert config["global"]["tls"]["frontend"]["server"]["requireClientAuth"] is True
    assert config["global"]["tls"]["frontend"]["server"]["clientCaFiles"] == ["ca"]
    assert config["services"]["internal-frontend"]["rpc"]["grpcPort"] == 20015
    plain = render_server_config(spec, ListenConfig.from_base(20000, "dc.yaml"))
    assert "tls" not in plain["global"] and "authorization" not in plain["global"]
    assert "internal-frontend" not in plain["services"]


def test_profiles_carry_the_api_key_and_the_file_is_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "temporal.toml"
    envconfig.write(
        path,
        [envconfig.Profile(name="c1", address="127.0.0.1:1", namespace="haul", api_key="tok")],
    )
    assert 'api_key = "tok"' in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

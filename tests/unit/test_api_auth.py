"""`haul api` auth without servers: every change needs the token, pages need CSRF and origin.

These requests are refused before any store or cluster is touched, so the app runs here over a
store that points nowhere; the accepted paths run against real Postgres in
tests/integration/test_api.py.
"""

from __future__ import annotations

import logging
from typing import cast

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from app.api import create_app, pages, routes
from app.api.auth import CSRF_COOKIE, SESSION_COOKIE, Auth
from app.api.inbox import Inbox
from app.core.settings import ApiSettings, SettingsError
from app.platform.client import HaulClient
from app.platform.failures import FailureStore

TOKEN = "s3cret-token-value"
NOWHERE = "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1"
# Sign-in and sign-out change no data; every other POST must be guarded.
AUTH_FORMS = {"/login", "/logout"}


def make_client(token: str | None, *, read_auth: bool = False) -> TestClient:
    inbox = Inbox(store=FailureStore(NOWHERE), haul=cast(HaulClient, None))
    app = create_app(inbox, Auth(token, read_auth=read_auth), poll=False)
    return TestClient(app, base_url="http://inbox.test", follow_redirects=False)


def mutating_paths() -> list[tuple[str, bool]]:
    """(path with an ID filled in, is a JSON API route) for every POST route of the app."""
    found = []
    for route in [*routes.router.routes, *pages.router.routes]:
        if isinstance(route, APIRoute) and "POST" in route.methods and route.path not in AUTH_FORMS:
            path = route.path.replace("{failure_id}", "7")
            found.append((path, route.path.startswith("/api")))
    return found


def test_the_app_has_the_mutating_endpoints_the_issue_names() -> None:
    paths = {p for p, _ in mutating_paths()}
    assert {
        "/api/failures/7/redrive",
        "/api/failures/redrive",
        "/api/failures/7/resolve",
        "/api/failures/7/reopen",
        "/failures/7/redrive",
        "/failures/redrive",
        "/failures/7/resolve",
        "/failures/7/reopen",
    } <= paths


@pytest.mark.parametrize(("path", "api"), mutating_paths())
def test_with_no_token_configured_every_change_is_refused(path: str, api: bool) -> None:
    client = make_client(None)
    headers = {"Authorization": "Bearer anything"} if api else {}
    if not api:  # a page form with a valid CSRF value still cannot change anything
        csrf = client.get("/login").cookies[CSRF_COOKIE]
        response = client.post(path, data={"csrf_token": csrf}, headers=headers)
    else:
        response = client.post(path, json={}, headers=headers)
    assert response.status_code == 403
    assert "no API token is configured" in response.text


@pytest.mark.parametrize(("path", "api"), [p for p in mutating_paths() if p[1]])
@pytest.mark.parametrize(
    "header", [None, "Bearer wrong-token", f"Basic {TOKEN}", "Bearer ", f"Bearer {TOKEN}x"]
)
def test_api_changes_need_the_exact_bearer_token(path: str, api: bool, header: str | None) -> None:
    client = make_client(TOKEN)
    headers = {"Authorization": header} if header is not None else {}
    response = client.post(path, json={}, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_a_signed_in_session_does_not_open_the_json_api() -> None:
    # Cookies ride along on cross-site requests; only a bearer header opens the API.
    client = make_client(TOKEN)
    sign_in(client)
    assert client.post("/api/failures/7/resolve", json={}).status_code == 401


def sign_in(client: TestClient) -> str:
    csrf = client.get("/login").cookies[CSRF_COOKIE]
    response = client.post(
        "/login",
        data={"csrf_token": csrf, "token": TOKEN, "next": "/failures/7"},
        headers={"Origin": "http://inbox.test", "Sec-Fetch-Site": "same-origin"},
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/failures/7"
    session = response.cookies[SESSION_COOKIE]
    assert TOKEN not in session
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    return csrf


def test_a_wrong_token_does_not_sign_in() -> None:
    client = make_client(TOKEN)
    csrf = client.get("/login").cookies[CSRF_COOKIE]
    response = client.post("/login", data={"csrf_token": csrf, "token": "guess"})
    assert response.status_code == 401
    assert SESSION_COOKIE not in response.cookies


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({"Sec-Fetch-Site": "cross-site"}, "cross-site"),
        ({"Sec-Fetch-Site": "same-site"}, "cross-site"),
        ({"Origin": "https://evil.example"}, "cross-origin"),
        ({"Origin": "http://inbox.test:8443"}, "cross-origin"),
    ],
)
def test_a_cross_site_form_post_is_refused_even_when_signed_in(
    headers: dict[str, str], why: str
) -> None:
    client = make_client(TOKEN)
    csrf = sign_in(client)
    response = client.post("/failures/7/resolve", data={"csrf_token": csrf}, headers=headers)
    assert response.status_code == 403
    assert why in response.text


@pytest.mark.parametrize("submitted", ["", "forged", "abc.def"])
def test_a_form_post_without_the_matching_csrf_value_is_refused(submitted: str) -> None:
    client = make_client(TOKEN)
    sign_in(client)
    response = client.post("/failures/7/resolve", data={"csrf_token": submitted})
    assert response.status_code == 403
    assert "CSRF" in response.text


def test_a_csrf_pair_the_attacker_made_up_is_refused() -> None:
    # Double submit alone trusts any cookie equal to the field; ours must carry our signature.
    client = make_client(TOKEN)
    sign_in(client)
    client.cookies.set(CSRF_COOKIE, "0123.deadbeef", domain="inbox.test")
    response = client.post("/failures/7/resolve", data={"csrf_token": "0123.deadbeef"})
    assert response.status_code == 403


def test_a_form_post_with_csrf_but_no_session_is_refused() -> None:
    client = make_client(TOKEN)
    csrf = client.get("/login").cookies[CSRF_COOKIE]
    response = client.post("/failures/7/redrive", data={"csrf_token": csrf})
    assert response.status_code == 401
    assert "sign in" in response.text


def test_a_session_signed_for_another_token_is_refused() -> None:
    old = make_client("the-old-token")
    session = Auth("the-old-token").new_session()
    client = make_client(TOKEN)
    client.cookies.set(SESSION_COOKIE, session, domain="inbox.test")
    csrf = client.get("/login").cookies[CSRF_COOKIE]
    assert client.post("/failures/7/resolve", data={"csrf_token": csrf}).status_code == 401
    old.close()


def test_reads_behind_the_token_when_set() -> None:
    client = make_client(TOKEN, read_auth=True)
    assert client.get("/api/failures").status_code == 401
    assert client.get("/api/failures/summary").status_code == 401
    page = client.get("/failures?fingerprint=x")
    assert page.status_code == 303
    assert page.headers["location"].startswith("/login?next=")
    assert client.get("/healthz").status_code == 200
    assert client.get("/login").status_code == 200


def test_pages_carry_a_content_security_policy() -> None:
    page = make_client(TOKEN).get("/login")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


def test_the_token_is_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(TOKEN)
    client.post("/api/failures/7/resolve", headers={"Authorization": "Bearer wrong"})
    sign_in(client)
    assert TOKEN not in caplog.text and "wrong" not in caplog.text


def test_token_from_the_variable_or_the_mounted_file(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HAUL_API_TOKEN", raising=False)
    monkeypatch.delenv("HAUL_API_TOKEN_FILE", raising=False)
    assert ApiSettings().token() is None
    secret = tmp_path / "token"
    secret.write_text(TOKEN + "\n")
    monkeypatch.setenv("HAUL_API_TOKEN_FILE", str(secret))
    assert ApiSettings().token() == TOKEN
    monkeypatch.setenv("HAUL_API_TOKEN", "from-env")
    assert ApiSettings().token() == "from-env"
    assert "from-env" not in repr(ApiSettings())


def test_an_unreadable_token_file_names_the_variable(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HAUL_API_TOKEN", raising=False)
    monkeypatch.setenv("HAUL_API_TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(SettingsError, match="HAUL_API_TOKEN_FILE"):
        ApiSettings().token()


@pytest.mark.parametrize("target", ["//evil.example/x", "/\\evil.example", "https://evil.example"])
def test_sign_in_never_sends_the_browser_off_site(target: str) -> None:
    client = make_client(TOKEN)
    csrf = client.get("/login").cookies[CSRF_COOKIE]
    response = client.post("/login", data={"csrf_token": csrf, "token": TOKEN, "next": target})
    assert response.status_code == 303 and response.headers["location"] == "/"

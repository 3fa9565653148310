"""Who may read and change the inbox: a bearer token, a signed session, and CSRF checks.

One shared token (HAUL_API_TOKEN or its mounted file) guards every change. API clients send it
as `Authorization: Bearer ...`, compared in constant time. A person signs in on /login with the
same token and gets a signed, HttpOnly, SameSite=Strict session cookie, never the token itself.
Their form posts must also carry a signed double-submit CSRF value and come from this origin
(Origin and Sec-Fetch-Site). Sessions and CSRF values are signed with a key derived from the
token, so every replica accepts them and rotating the token ends them. With no token set, every
change is refused. Nothing here logs a token or a cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field

from fastapi import HTTPException, Request, status

SESSION_COOKIE = "haul_session"
CSRF_COOKIE = "haul_csrf"
CSRF_FIELD = "csrf_token"
SESSION_SECONDS = 12 * 3600
NO_TOKEN = (
    "changes are disabled: no API token is configured; set HAUL_API_TOKEN or mount the "
    "token file named by HAUL_API_TOKEN_FILE"
)


class LoginRequired(Exception):
    """A page read needs a signed-in session (HAUL_API_READ_AUTH); the app redirects to /login."""


def _sign(key: bytes, purpose: str, value: str) -> str:
    return hmac.new(key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()


@dataclass
class Auth:
    """The token (None: changes refused) and whether reads need it too."""

    token: str | None
    read_auth: bool = False
    _key: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._key = (
            hmac.new(self.token.encode(), b"haul-api-signing", hashlib.sha256).digest()
            if self.token
            else secrets.token_bytes(32)
        )

    # -- the token ---------------------------------------------------------------------------

    def token_matches(self, given: str) -> bool:
        if not self.token:
            return False
        return hmac.compare_digest(given.encode(), self.token.encode())

    def _bearer(self, request: Request) -> str | None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        return value.strip() if scheme.lower() == "bearer" and value.strip() else None

    def require_bearer(self, request: Request) -> None:
        """An API change: refused without a configured token, or without the right one."""
        if not self.token:
            raise HTTPException(status.HTTP_403_FORBIDDEN, NO_TOKEN)
        given = self._bearer(request)
        if given is None or not self.token_matches(given):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "a valid API token is required: send `Authorization: Bearer <token>`",
                headers={"WWW-Authenticate": "Bearer"},
            )

    # -- sessions ----------------------------------------------------------------------------

    def new_session(self) -> str:
        expires = str(int(time.time()) + SESSION_SECONDS)
        return f"{expires}.{_sign(self._key, 'session', expires)}"

    def signed_in(self, request: Request) -> bool:
        if not self.token:
            return False
        expires, _, sig = request.cookies.get(SESSION_COOKIE, "").partition(".")
        if not expires.isdigit() or int(expires) < time.time():
            return False
        return hmac.compare_digest(sig, _sign(self._key, "session", expires))

    def may_read(self, request: Request) -> bool:
        if not self.read_auth:
            return True
        if self.signed_in(request):
            return True
        given = self._bearer(request)
        return given is not None and self.token_matches(given)

    def require_read(self, request: Request) -> None:
        """A JSON read: open, or behind the token (HAUL_API_READ_AUTH)."""
        if not self.may_read(request):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "reads need the API token here (HAUL_API_READ_AUTH): send a bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )

    def require_page_read(self, request: Request) -> None:
        if not self.may_read(request):
            raise LoginRequired()

    # -- CSRF --------------------------------------------------------------------------------

    def csrf_value(self, request: Request) -> str:
        """The page's CSRF value: the browser's signed cookie if valid, else a new one."""
        current = request.cookies.get(CSRF_COOKIE, "")
        if self._csrf_valid(current):
            return current
        nonce = secrets.token_hex(16)
        return f"{nonce}.{_sign(self._key, 'csrf', nonce)}"

    def _csrf_valid(self, value: str) -> bool:
        nonce, _, sig = value.partition(".")
        return bool(nonce) and hmac.compare_digest(sig, _sign(self._key, "csrf", nonce))

    def check_form_origin(self, request: Request, submitted: str) -> None:
        """A form post from a page: same origin, and the submitted CSRF value is the cookie's."""
        fetch_site = request.headers.get("sec-fetch-site")
        if fetch_site is not None and fetch_site not in ("same-origin", "none"):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "cross-site form post refused")
        origin = request.headers.get("origin")
        own = f"{request.url.scheme}://{request.url.netloc}"
        if origin is not None and origin != own:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "cross-origin form post refused")
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if not (
            submitted
            and self._csrf_valid(cookie)
            and hmac.compare_digest(submitted.encode(), cookie.encode())
        ):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                "form post refused: its CSRF value is missing or does not match; reload the page",
            )

    def require_form_change(self, request: Request, submitted: str) -> None:
        """A change from a page: same-origin CSRF checks, then a signed-in session."""
        self.check_form_origin(request, submitted)
        if not self.token:
            raise HTTPException(status.HTTP_403_FORBIDDEN, NO_TOKEN)
        if not self.signed_in(request):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, "sign in with the API token first (/login)"
            )

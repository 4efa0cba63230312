"""Who may write: a bearer token (`NAS_API_TOKEN`), or the dashboard's session cookie plus a
CSRF token. Browsers cannot put a header on `EventSource` or a plain form, so `POST /session`
with the token sets an HttpOnly, SameSite=Strict cookie; writes made with the cookie must echo
the CSRF token in `X-CSRF-Token`. Both are HMACs of the API token and a random nonce: nothing
to store, and changing the token signs everyone out. Tokens are never accepted in a URL.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from server.settings import ServerSettings

SESSION_COOKIE = "nas_session"
CSRF_HEADER = "X-CSRF-Token"


def _sign(token: str, purpose: str, nonce: str) -> str:
    message = f"{purpose}:{nonce}".encode("utf-8", "surrogatepass")
    return hmac.new(token.encode(), message, hashlib.sha256).hexdigest()


def new_session(token: str) -> tuple[str, str]:
    """(cookie value, CSRF token) of a new dashboard session."""
    nonce = secrets.token_urlsafe(16)
    return f"{nonce}.{_sign(token, 'session', nonce)}", _sign(token, "csrf", nonce)


def _session_nonce(cookie: str | None, token: str) -> str | None:
    if not cookie or "." not in cookie:
        return None
    nonce, signature = cookie.split(".", 1)
    expected = _sign(token, "session", nonce).encode()  # bytes: a cookie may be any text
    return nonce if hmac.compare_digest(signature.encode("utf-8", "surrogatepass"),
                                        expected) else None


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


def authorize(request: Request, *, write: bool) -> None:
    """Raise 401 unless the request may read (or `write`)."""
    settings: ServerSettings = request.app.state.settings
    token = settings.token()
    if token is None or (not write and not settings.protect_reads):
        return
    given = _bearer(request)
    if given is not None:
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise _unauthorized("wrong API token")
        return
    nonce = _session_nonce(request.cookies.get(SESSION_COOKIE), token)
    if nonce is None:
        raise _unauthorized("this needs the API token: `Authorization: Bearer <token>` "
                            "(or sign in to the dashboard)")
    if write and request.method not in ("GET", "HEAD", "OPTIONS"):
        csrf = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(csrf.encode(), _sign(token, "csrf", nonce).encode()):
            raise HTTPException(403, f"a write with the session cookie needs its "
                                     f"{CSRF_HEADER} header")


def require_read(request: Request) -> None:
    authorize(request, write=False)


def require_write(request: Request) -> None:
    authorize(request, write=True)


ReadAccess = Annotated[None, Depends(require_read)]
WriteAccess = Annotated[None, Depends(require_write)]


def session_csrf(request: Request) -> str | None:
    """The CSRF token of the request's dashboard session (None: not signed in; "" on an open
    server, which needs none). Pages carry it so that a signed-in tab can write."""
    token = request.app.state.settings.token()
    if token is None:
        return ""
    nonce = _session_nonce(request.cookies.get(SESSION_COOKIE), token)
    return None if nonce is None else _sign(token, "csrf", nonce)

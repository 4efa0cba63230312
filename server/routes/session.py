"""The dashboard's sign-in: the API token once, then an HttpOnly session cookie + CSRF token."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, HTTPException, Response

from server.auth import SESSION_COOKIE, new_session
from server.deps import SettingsDep
from server.schemas import SessionIn, SessionOut, errors
from server.strict_json import StrictJSONRoute

router = APIRouter(tags=["session"], route_class=StrictJSONRoute)


@router.post("/session", response_model=SessionOut, responses=errors(400, 401, 422))
def sign_in(body: SessionIn, response: Response, settings: SettingsDep) -> SessionOut:
    token = settings.token()
    if token is None:
        return SessionOut(csrf_token="")  # an open server: nothing to sign in to
    if not hmac.compare_digest(body.token.encode("utf-8", "surrogatepass"), token.encode()):
        raise HTTPException(401, "wrong API token")
    cookie, csrf = new_session(token)
    response.set_cookie(SESSION_COOKIE, cookie, httponly=True, samesite="strict", path="/")
    return SessionOut(csrf_token=csrf)


@router.delete("/session", status_code=204)
def sign_out(response: Response) -> Response:
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.status_code = 204
    return response

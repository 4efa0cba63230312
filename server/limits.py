"""`RequestLimits`: what a write must pass before the server reads its body.

ASGI middleware. A write (any method but GET, HEAD and OPTIONS, apart from signing in and out
of the dashboard) is authorized from its headers first (`server.auth.authorize`), so a client
without the token cannot make the server receive a large body at all. A body larger than its
route accepts is refused with 413 as soon as that is known: from `Content-Length`, or while it
streams in (chunked uploads): a dataset upload may be `NAS_MAX_UPLOAD_MB` (and the multipart
framing around it), any other body `MAX_BODY_BYTES`.
"""

from __future__ import annotations

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.auth import authorize

MAX_BODY_BYTES = 1 << 20  # a search config, a baselines list: a few KiB
UPLOAD_PATH = "/api/v1/datasets"
MULTIPART_SLACK = 1 << 20  # the form's boundaries and part headers around the archive
OPEN_WRITES = frozenset({"/session"})  # signing in needs no token yet
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class RequestLimits:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if scope["path"] not in OPEN_WRITES:
            try:
                authorize(request, write=True)
            except HTTPException as refused:
                await _answer(refused, scope, receive, send)
                return
        limit = self._limit(request)
        declared = request.headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > limit:
            await _answer(_too_large(limit), scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:  # FastAPI's exception handling answers it
                    raise _too_large(limit)
            return message

        await self.app(scope, counted, send)

    @staticmethod
    def _limit(request: Request) -> int:
        if request.url.path.rstrip("/") == UPLOAD_PATH:
            return (request.app.state.settings.max_upload_mb << 20) + MULTIPART_SLACK
        return MAX_BODY_BYTES


def _too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"the request body is larger than this route accepts "
                              f"({limit >> 20} MiB)")


async def _answer(error: HTTPException, scope: Scope, receive: Receive, send: Send) -> None:
    response = JSONResponse({"detail": error.detail}, status_code=error.status_code,
                            headers=error.headers)
    await response(scope, receive, send)

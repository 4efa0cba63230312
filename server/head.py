"""`HeadAsGet`: HEAD on every GET route (HTTP requires it; health checks and link checkers
use it), answered with the GET's status and headers and no body.

ASGI middleware: the route runs as the GET it stands for and its body is dropped. The event
stream is left out: its GET runs until the search ends.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] != "HEAD"
                or scope["path"].rstrip("/").endswith("/events")):
            await self.app(scope, receive, send)
            return

        async def without_body(message: Message) -> None:
            if message["type"] != "http.response.body":
                await send(message)
            elif not message.get("more_body", False):
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        await self.app({**scope, "method": "GET"}, receive, without_body)

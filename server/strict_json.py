"""JSON request bodies that give a key twice are refused, as configs in YAML are
(`nas.strict_yaml`): `{"budget": {...}, "budget": {...}}` would otherwise launch the last one
without a word. The refusal is FastAPI's own for a body that is not JSON (422, `json_invalid`),
naming the key."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from searchspace.unique_keys import KeyGivenTwice, unique_keys


class StrictJSONRequest(Request):
    """A request whose JSON body may not give a key twice in one object."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = json.loads(body, object_pairs_hook=unique_keys)
            except KeyGivenTwice as error:
                raise json.JSONDecodeError(str(error), body.decode("utf-8", "replace"),
                                           0) from None
        return self._json


class StrictJSONRoute(APIRoute):
    """A route whose handler reads the body as a `StrictJSONRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive,
                                                   request._send))  # noqa: SLF001

        return strict_handler

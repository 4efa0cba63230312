"""The API's error bodies: `{"detail": ...}` for user errors and bugs, FastAPI's list of
`{loc, msg, type}` for a request that fails validation.

No error body echoes what the request sent: it may be huge (a 20 MB name), or not JSON at all
once parsed (NaN, Infinity, a lone UTF-16 surrogate), and rendering it must not turn a 422
into a 500. Text from the request that an error names is cut short and made printable.
"""

from __future__ import annotations

import logging

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from nas.service.errors import describe, http_status

logger = logging.getLogger(__name__)
MAX_TEXT = 500  # characters of any one string an error body carries


def printable(text: str) -> str:
    """`text` as valid UTF-8 (a lone surrogate as its escape), at most `MAX_TEXT` long."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT - 3] + "..."


async def error_response(request: Request, error: Exception) -> JSONResponse:
    status = http_status(error)
    if status is None:
        logger.exception("unexpected error on %s %s", request.method, request.url.path,
                         exc_info=error)
        return JSONResponse({"detail": "internal error; see the server's log"}, status_code=500)
    return JSONResponse({"detail": printable(describe(error))}, status_code=status)


async def validation_response(request: Request, error: RequestValidationError) -> JSONResponse:
    detail = [{"loc": [printable(part) if isinstance(part, str) else part
                       for part in item.get("loc", ())],
               "msg": printable(_message(item)), "type": str(item.get("type", ""))}
              for item in error.errors()]
    return JSONResponse({"detail": detail}, status_code=422)


def _message(item: dict) -> str:
    """The item's message; for a body that is not JSON, with the reason (where, which key)."""
    message = str(item.get("msg", ""))
    reason = (item.get("ctx") or {}).get("error")
    if item.get("type") == "json_invalid" and reason:
        return f"{message}: {reason}"
    return message

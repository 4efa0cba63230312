"""A query parameter given twice is refused (422 naming it): `?status=finished&status=queued`
answered for the last value alone, without a word. No parameter of the API or the dashboard
takes a list."""

from __future__ import annotations

from fastapi import Request
from fastapi.exceptions import RequestValidationError


def refuse_repeated_query(request: Request) -> None:
    """An app-wide dependency: `RequestValidationError` for the first parameter given twice."""
    seen: set[str] = set()
    for key, _ in request.query_params.multi_items():
        if key in seen:
            raise RequestValidationError([{
                "type": "value_error", "loc": ("query", key), "input": None,
                "msg": "given more than once: give it once"}])
        seen.add(key)

"""Server-Sent Events of one search: its event log from `Last-Event-ID` on, then live.

Each stored event is sent once with its id, so a client that reconnects (EventSource does so
by itself, with `Last-Event-ID`) misses nothing and sees nothing twice. When the search has
ended (or was deleted) and everything is sent, an `end` event closes the stream. A change of
the search's status is sent as a `status` event (no id: it is read from the search, not the
log) as it is seen.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import Request
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from nas.states import ENDED_STATUSES
from nas.store import Store, UnknownSearch

POLL_SECONDS = 0.5
BATCH = 500
MAX_EVENT_ID = 2**63 - 1  # the largest id a BIGINT column holds


def last_event_id(request: Request) -> int:
    value = request.headers.get("last-event-id", "").strip()
    ascii_digits = value.isascii() and value.isdigit()  # str.isdigit() also takes "²"
    if not ascii_digits:
        return 0
    return min(int(value[:20]), MAX_EVENT_ID)  # beyond every id there is: nothing to resend


async def _events(request: Request, store: Store, search_id: str) -> AsyncIterator[dict]:
    last = last_event_id(request)
    poll = getattr(request.app.state, "sse_poll_seconds", POLL_SECONDS)
    status = None
    while not await request.is_disconnected():
        try:
            search = await run_in_threadpool(store.get_search, search_id)
        except UnknownSearch:  # deleted while followed: the stream ends, as for an ended one
            yield {"event": "end", "data": json.dumps({"search_id": search_id,
                                                       "deleted": True})}
            return
        if search.status != status:
            status = search.status
            yield {"event": "status", "data": json.dumps({
                "status": str(status), "error": search.error, "best_reward": search.best_reward})}
        ended = status in ENDED_STATUSES
        rows = await run_in_threadpool(store.events, search_id, last, BATCH)
        for row in rows:
            last = row.id
            yield {"id": str(row.id), "event": row.kind, "data": json.dumps({
                "id": row.id, "kind": row.kind, "message": row.message, "data": row.data,
                "created_at": row.created_at.isoformat()})}
        if ended and len(rows) < BATCH:
            yield {"event": "end", "data": json.dumps({"search_id": search_id})}
            return
        if len(rows) < BATCH:
            await asyncio.sleep(poll)


def event_stream(request: Request, store: Store, search_id: str) -> EventSourceResponse:
    return EventSourceResponse(_events(request, store, search_id), ping=15)

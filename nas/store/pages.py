"""Keyset pagination over searches and architectures: pages that stay fast and stable while
rows are added (no OFFSET). A cursor is the last row's (sort value, id), opaque to callers."""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from sqlalchemy import ColumnElement, and_, func, or_, select

from .models import Architecture, ArchitectureRole, ArchitectureState, Search, SearchStatus
from .records import ArchitectureRecord, SearchRecord

T = TypeVar("T")
ArchitectureSort = Literal["reward", "params", "flops", "step", "accuracy", "latency_ms"]
SORT_COLUMNS = {
    "reward": Architecture.reward, "accuracy": Architecture.accuracy,
    "params": Architecture.params, "flops": Architecture.flops, "step": Architecture.step,
    "latency_ms": Architecture.latency_ms,
}
DESCENDING_BY_DEFAULT = frozenset({"reward", "accuracy"})
SQL_INT_MAX = 2**63 - 1  # the largest id or value an integer column can hold


def storable(value: Any) -> bool:
    """Whether a number from a request can be compared with a column at all: an integer of
    64 bits, or a finite float (SQLite and PostgreSQL refuse the rest with a driver error)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -SQL_INT_MAX - 1 <= value <= SQL_INT_MAX
    return not isinstance(value, float) or math.isfinite(value)


class InvalidCursor(ValueError):
    """A page cursor that this store did not hand out."""


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None
    """Pass it back to get the next page; None on the last page."""


def encode_cursor(value: Any, row_id: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps([value, row_id]).encode()).decode()


def decode_cursor(cursor: str) -> tuple[Any, Any]:
    try:
        value, row_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError, UnicodeError):
        raise InvalidCursor(f"invalid page cursor {cursor[:40]!r}") from None
    if (isinstance(value, (dict, list)) or isinstance(row_id, (dict, list)) or row_id is None
            or not storable(value) or not storable(row_id)):
        raise InvalidCursor(f"invalid page cursor {cursor[:40]!r}")
    return value, row_id


def after(column: ColumnElement, identity: ColumnElement, value: Any, row_id: Any,
          descending: bool) -> ColumnElement[bool]:
    """Non-NULL rows after (value, row_id) in the order `column`, then `identity`. The bound
    on `column` alone lets the index seek to the cursor instead of scanning up to it."""
    bound = column <= value if descending else column >= value
    beyond = column < value if descending else column > value
    return and_(bound, or_(beyond, and_(column == value, identity > row_id)))


class PageQueries:
    """Mixed into `Store`: paged listings and counts for the API."""

    def page_searches(self, *, status: SearchStatus | None = None, cursor: str | None = None,
                      limit: int = 50) -> Page[SearchRecord]:
        """Searches, newest first."""
        from .store import _best_reward, _record

        query = select(Search, _best_reward())
        if status is not None:
            query = query.where(Search.status == SearchStatus(status))
        if cursor is not None:
            created, row_id = decode_cursor(cursor)
            query = query.where(or_(
                Search.created_at < _parse_time(created),
                and_(Search.created_at == _parse_time(created), Search.id < str(row_id))))
        query = query.order_by(Search.created_at.desc(), Search.id.desc()).limit(limit + 1)
        with self._session() as session:
            rows = [_record(SearchRecord, search, best_reward=best)
                    for search, best in session.execute(query)]
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = encode_cursor(rows[-1].created_at.isoformat(), rows[-1].id)
        return Page(rows, next_cursor)

    def page_architectures(
        self, search_id: str, *, sort: ArchitectureSort = "reward", descending: bool | None = None,
        state: ArchitectureState | None = None, role: ArchitectureRole | None = None,
        cursor: str | None = None, limit: int = 100,
    ) -> Page[ArchitectureRecord]:
        """A search's architectures sorted by `sort` (NULLs last), ties by id."""
        from .store import _record

        column = SORT_COLUMNS[sort]
        descending = sort in DESCENDING_BY_DEFAULT if descending is None else descending
        query = self._architecture_query(search_id, state, role)
        value = row_id = None
        if cursor is not None:
            value, row_id = decode_cursor(cursor)
            if not isinstance(row_id, int):
                raise InvalidCursor(f"invalid page cursor {cursor[:40]!r}")
        # NULLs last, as two queries that each follow an index on (search_id, column): the
        # rows with a value, then (when those run out) the NULL ones by id.
        with_value = query.where(column.is_not(None))
        if cursor is not None and value is not None:
            with_value = with_value.where(after(column, Architecture.id, value, row_id,
                                                descending))
        ordering = column.desc() if descending else column.asc()
        without_value = query.where(column.is_(None))
        if cursor is not None and value is None:
            without_value = without_value.where(Architecture.id > row_id)
        with self._session() as session:
            self._search(session, search_id)
            rows = [] if cursor is not None and value is None else [
                _record(ArchitectureRecord, row) for row in session.scalars(
                    with_value.order_by(ordering, Architecture.id).limit(limit + 1))]
            if len(rows) <= limit:
                rows += [_record(ArchitectureRecord, row) for row in session.scalars(
                    without_value.order_by(Architecture.id).limit(limit + 1 - len(rows)))]
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = encode_cursor(getattr(rows[-1], sort), rows[-1].id)
        return Page(rows, next_cursor)

    def count_searches_by_status(self) -> dict[SearchStatus, int]:
        query = select(Search.status, func.count()).group_by(Search.status)
        with self._session() as session:
            return {SearchStatus(status): count for status, count in session.execute(query)}


def _parse_time(value: Any) -> datetime:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        raise InvalidCursor("invalid page cursor") from None


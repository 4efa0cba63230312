"""Transient database errors and the retry policy for them (tenacity, exponential backoff).

A connection refused, reset or killed by a server shutdown is retried for a grace period
(`NAS_DB_GRACE_SECONDS`, default 60), so a search goes on through a database restart; after
it, the operation raises `StoreUnavailable` with one line naming the database and the cause.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sqlite3
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

from .errors import StoreUnavailable

logger = logging.getLogger(__name__)
DEFAULT_GRACE_SECONDS = 60.0


def grace_seconds() -> float:
    """`$NAS_DB_GRACE_SECONDS`: how long transient database errors are retried."""
    value = os.environ.get("NAS_DB_GRACE_SECONDS", "")
    try:
        seconds = float(value) if value else DEFAULT_GRACE_SECONDS
    except ValueError:
        raise ValueError(f"NAS_DB_GRACE_SECONDS must be a number of seconds, got {value!r}"
                         ) from None
    if not seconds >= 0 or seconds == float("inf"):
        raise ValueError(f"NAS_DB_GRACE_SECONDS must be finite and >= 0, got {value!r}")
    return seconds


def is_transient(error: BaseException) -> bool:
    """A lost or refused connection (the database may come back), not a bad query or file."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, OperationalError | InterfaceError)


def masked(url: str) -> str:
    """`url` with its password hidden (also when it does not parse as a URL)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def cause(error: BaseException) -> str:
    """The driver's own message of `error`, on one line, without SQLAlchemy's boilerplate."""
    original = getattr(error, "orig", None) or error
    return " ".join(str(original).split()) or type(original).__name__


class _HasUrl(Protocol):
    url: str
    grace_seconds: float


T = TypeVar("T")


def retried(method: Callable[..., T]) -> Callable[..., T]:
    """Retry a store method on transient errors for `self.grace_seconds`, then raise
    `StoreUnavailable` (the whole method, one transaction, runs again each time)."""

    @functools.wraps(method)
    def wrapper(self: _HasUrl, *args: Any, **kwargs: Any) -> T:
        retrying = Retrying(
            retry=retry_if_exception(is_transient),
            wait=wait_exponential(multiplier=0.1, max=5),
            stop=stop_after_delay(self.grace_seconds),
            before_sleep=before_sleep_log(logger, logging.INFO),
            reraise=True,
        )
        try:
            return retrying(method, self, *args, **kwargs)
        except DBAPIError as error:
            if not is_transient(error):
                raise
            raise StoreUnavailable(
                f"database {masked(self.url)} unreachable for {self.grace_seconds:g} s "
                f"(NAS_DB_GRACE_SECONDS): {cause(error)}"
            ) from error

    return wrapper


def describe_open_error(url: str, error: BaseException) -> StoreUnavailable:
    """One line for a database that cannot be opened: a bad URL, no server, a corrupt file."""
    if isinstance(error, ArgumentError):
        return StoreUnavailable(
            f"invalid database URL {masked(url)!r} (NAS_DATABASE_URL): {cause(error)}; "
            "expected e.g. sqlite:///path/to/nas.db or postgresql+psycopg://user:pass@host/db"
        )
    return StoreUnavailable(f"cannot open the database {masked(url)}: {cause(error)}")


OPEN_ERRORS = (SQLAlchemyError, sqlite3.Error, ValueError, ModuleNotFoundError)

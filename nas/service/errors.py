"""The one kind of error a user of the service can cause, and its HTTP status.

The CLI prints any of these as one line and exits 2; the HTTP API answers `{"detail": ...}`
with `http_status(error)`. Engine errors a user can cause are mapped here, once, so the two
faces cannot disagree.
"""

from __future__ import annotations

from pydantic import ValidationError

from nas.config import ConfigError, describe_validation_error
from nas.data import DatasetError
from nas.store import InvalidTransition, UnknownArchitecture, UnknownSearch
from nas.store.pages import InvalidCursor
from nas.strategies import IncompatibleState
from searchspace.genotype import InvalidGenotype


class UserError(Exception):
    """Something the caller asked that cannot be done; the message says why."""

    status = 400


class NotFound(UserError, LookupError):
    status = 404


class Conflict(UserError):
    """The request contradicts the current state (delete a running search, ...)."""

    status = 409


class InvalidInput(UserError, ValueError):
    status = 422


class Unavailable(UserError):
    """A service it depends on (the database, the Ray cluster) cannot be reached."""

    status = 503


STATUS_BY_TYPE: tuple[tuple[type[BaseException], int], ...] = (
    (UserError, 0),  # its own status
    (UnknownSearch, 404), (UnknownArchitecture, 404),
    (InvalidTransition, 409), (IncompatibleState, 409),
    (ValidationError, 422), (ConfigError, 422), (DatasetError, 422), (InvalidGenotype, 422),
    (InvalidCursor, 422),
)


def http_status(error: BaseException) -> int | None:
    """The HTTP status of a user error, or None when `error` is not one (a bug: 500)."""
    for kind, status in STATUS_BY_TYPE:
        if isinstance(error, kind):
            return status or error.status
    return None


def describe(error: BaseException) -> str:
    """One line for a user error."""
    if isinstance(error, ValidationError):
        return describe_validation_error(error)
    if isinstance(error, KeyError) and error.args:
        return str(error.args[0])
    return " ".join(str(error).split())

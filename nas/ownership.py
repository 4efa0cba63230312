"""One owner per search: claim it, keep a heartbeat while running it, release it at the end.

`owning(store, search_id)` claims the search (`Store.claim_search`: refused while a live
process owns it; a dead owner's search is taken over, up to `NAS_RESUME_LIMIT` times without
progress) and yields a store fenced by the lease: every write of the loop carries the epoch,
and the store refuses it once another process has claimed the search. A background thread
refreshes the heartbeat every `NAS_HEARTBEAT_SECONDS`; a process paused longer than
`NAS_HEARTBEAT_STALE_SECONDS` may be replaced, and the fencing keeps it from writing after.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from nas.store import OwnershipLost, SearchStatus, Store, StoreUnavailable

logger = logging.getLogger(__name__)


def _env_number(name: str, default: float, minimum: float) -> float:
    value = os.environ.get(name, "")
    try:
        number = float(value) if value else default
    except ValueError:
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not minimum <= number < float("inf"):
        raise ValueError(f"{name} must be finite and at least {minimum:g}, got {value!r}")
    return number


@dataclass(frozen=True)
class OwnershipSettings:
    """How often an owner beats, when its heartbeat is stale, and how often a search is
    resumed without progress before it is marked failed."""

    heartbeat_seconds: float = 5.0
    stale_seconds: float = 30.0
    resume_limit: int = 3

    @classmethod
    def from_env(cls) -> OwnershipSettings:
        """`NAS_HEARTBEAT_SECONDS`, `NAS_HEARTBEAT_STALE_SECONDS`, `NAS_RESUME_LIMIT`."""
        stale = _env_number("NAS_HEARTBEAT_STALE_SECONDS", cls.stale_seconds, 0.1)
        beat = _env_number("NAS_HEARTBEAT_SECONDS", min(cls.heartbeat_seconds, stale / 3), 0.01)
        if beat >= stale:
            raise ValueError(f"NAS_HEARTBEAT_SECONDS ({beat:g}) must be shorter than "
                             f"NAS_HEARTBEAT_STALE_SECONDS ({stale:g})")
        limit = float(_env_number("NAS_RESUME_LIMIT", cls.resume_limit, 0))
        if not limit.is_integer():
            raise ValueError(f"NAS_RESUME_LIMIT must be a whole number of resumes, got "
                             f"{os.environ['NAS_RESUME_LIMIT']!r}")
        return cls(heartbeat_seconds=beat, stale_seconds=stale, resume_limit=int(limit))


def new_owner_id() -> str:
    """A new owner id: host, process id and a random part (unique per claim)."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Heartbeat:
    """A daemon thread that refreshes the lease's heartbeat until stopped or the lease is lost.

    It only says the process is alive; liveness of the work itself (a hung candidate) is the
    evaluator's time limit. It writes through the fenced store, so it stops at the first beat
    after a takeover."""

    def __init__(self, fenced: Store, interval: float) -> None:
        self.fenced, self.interval = fenced, interval
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="nas-heartbeat")

    def start(self) -> None:
        self._thread.start()

    def stop(self, wait: bool = True) -> None:
        self._stop.set()
        if wait:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.fenced.heartbeat()
            except OwnershipLost as error:
                logger.info("%s", error)
                self.lost.set()
                return
            except (StoreUnavailable, OSError) as error:  # the loop's next write says so too
                logger.info("heartbeat failed: %s", error)
            except Exception:
                logger.exception("heartbeat failed")


@contextmanager
def owning(store: Store, search_id: str, settings: OwnershipSettings | None = None, *,
           only_from: frozenset[SearchStatus] | None = None) -> Iterator[Store]:
    """Claim `search_id` (set it running; only from a status in `only_from` when given), beat
    while the block runs, release at the end; yields the store fenced by the lease."""
    settings = settings or OwnershipSettings.from_env()
    lease = store.claim_search(search_id, new_owner_id(), stale_after=settings.stale_seconds,
                               max_resumes=settings.resume_limit, only_from=only_from)
    fenced = store.fenced(lease)
    heartbeat = Heartbeat(fenced, settings.heartbeat_seconds)
    heartbeat.start()
    database_down = False
    try:
        yield fenced
    except StoreUnavailable:
        database_down = True  # no release then: the lease goes stale and can be taken over
        raise
    finally:
        heartbeat.stop(wait=not database_down)
        if not database_down:
            fenced.release_search()

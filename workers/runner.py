"""The search runner: a Ray actor that runs searches detached from the caller (the server's).

`SearchRunner` opens its own store from a URL (a SQLite file path or a PostgreSQL server that
every node can reach) and runs one search at a time in a thread, so `status` and `cancel`
answer while it runs. Cancelling sets the search's status to `cancelled`; the loop stops at
its next step.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import ray

import workers.ray_evaluator  # noqa: F401  (candidates of a `workers` config train on Ray)
from nas.search import run_search
from nas.store import SearchStatus, Store
from nas.without_triton import hide_triton_without_gpu
from workers.cluster import connect

logger = logging.getLogger(__name__)
ACTIVE = (SearchStatus.QUEUED, SearchStatus.RUNNING)


class SearchRunner:
    """Runs the searches of one store; use `start_runner` to get it as a Ray actor."""

    def __init__(self, store_url: str) -> None:
        hide_triton_without_gpu()
        self.store_url = store_url
        self.search_id: str | None = None
        self.error: str | None = None
        self.scheduled = False
        self._thread: threading.Thread | None = None
        # Set once `start` returned or failed: calls to an actor with max_concurrency > 1 may
        # run in any order, and a `join` that ran before `start` must not return at once.
        self._started = threading.Event()

    def start(self, search_id: str, scheduled: bool = False) -> dict[str, Any]:
        """Run (or resume) `search_id` in the background; its status. `scheduled` (the
        server's runs): only while it is queued or running, as `run_search` says."""
        try:
            if self._thread is not None and self._thread.is_alive():
                raise RuntimeError(f"the runner is busy with search {self.search_id}")
            with Store(self.store_url) as store:
                store.get_search(search_id)  # an unknown id fails here, in the caller
            self.search_id, self.error, self.scheduled = search_id, None, scheduled
            self._thread = threading.Thread(target=self._run, args=(search_id,), daemon=True,
                                            name=f"search-{search_id}")
            self._thread.start()
        finally:
            self._started.set()
        return self.status()

    def status(self) -> dict[str, Any]:
        """The current search's status, candidates recorded, best reward and error."""
        if self.search_id is None:
            return {"search_id": None, "status": None, "running": False}
        with Store(self.store_url) as store:
            record = store.get_search(self.search_id)
            architectures = store.count_architectures(self.search_id)
        return {
            "search_id": self.search_id, "status": str(record.status),
            "running": self._thread is not None and self._thread.is_alive(),
            "architectures": architectures, "best_reward": record.best_reward,
            "error": self.error or record.error,
        }

    def cancel(self) -> dict[str, Any]:
        """Ask the running search to stop at its next step; its status."""
        if self.search_id is not None:
            with Store(self.store_url) as store:
                if store.get_search(self.search_id).status in ACTIVE:
                    store.set_status(self.search_id, SearchStatus.CANCELLED)
        return self.status()

    def join(self, timeout: float | None = None) -> dict[str, Any]:
        """Wait for the current search to end (up to `timeout` s); its status. Called before
        any `start`, it waits for one first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._started.wait(timeout)
        if self._thread is not None:
            self._thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return self.status()

    def _run(self, search_id: str) -> None:
        try:
            with Store(self.store_url) as store:
                run_search(store, search_id, scheduled=self.scheduled)
        except Exception as error:  # run_search recorded it in the store too
            self.error = f"{type(error).__name__}: {error}"
            logger.exception("search %s failed", search_id)


def start_runner(store_url: str, *, name: str | None = None, address: str | None = None
                 ) -> ray.actor.ActorHandle:
    """A `SearchRunner` actor (named and detached when `name` is given: it outlives the caller
    and `ray.get_actor(name)` finds it again). It holds no CPU: the candidates' trials do."""
    connect(address)
    options: dict[str, Any] = {"num_cpus": 0, "max_concurrency": 4}
    if name is not None:
        options |= {"name": name, "lifetime": "detached", "get_if_exists": True}
    return ray.remote(SearchRunner).options(**options).remote(store_url)

"""Running queued searches: admission (at most `max_running` at once), launching, stopping,
and finding searches whose owner died.

A `Launcher` starts a run of `run_search` somewhere: `ProcessLauncher` as a `nas resume`
process on this machine, `workers.search_actors.RayLauncher` as a Ray actor with the
resources the config's `runner` section asks for. `RunScheduler` (one per server) ticks every
second, or when woken: it starts the oldest queued searches while slots are free, restarts
running searches whose heartbeat is stale (their owner died: the claim takes them over, and
a search that keeps dying ends `failed` after `NAS_RESUME_LIMIT` resumes), fails a launched
search whose run died before claiming it, and hard-stops runs that a cancel did not stop
within `stop_grace_seconds`.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Protocol

from nas.config import SearchConfig
from nas.ownership import OwnershipSettings
from nas.store import SearchStatus, Store

from .errors import InvalidInput

logger = logging.getLogger(__name__)
CLAIM_SECONDS = 120.0  # a launched run that has not claimed its search by then has failed


class Launcher(Protocol):
    def start(self, search_id: str, config: SearchConfig) -> None:
        """Start running `search_id` (it claims the search itself)."""

    def alive(self, search_id: str) -> bool:
        """Whether the run started for `search_id` is still going."""

    def stop(self, search_id: str) -> None:
        """End the run of `search_id` now (it did not stop when cancelled)."""

    def reap(self) -> list[tuple[str, str]]:
        """Forget runs that ended; (search id, how it ended) of each."""

    def capacity(self) -> dict[str, float]:
        """The most "cpus" and "gpus" one run can ever get here."""

    def health(self) -> str:
        """"ok", or why runs cannot start."""

    def close(self) -> None:
        """Stop launching; runs already started go on."""


class ProcessLauncher:
    """Each search as a `nas resume ID` process on this machine (its own session, so it
    outlives the server; its output in `home/logs/search-ID.log`)."""

    def __init__(self, store_url: str, home: Path) -> None:
        self.store_url, self.home = store_url, home
        self._processes: dict[str, subprocess.Popen] = {}

    def start(self, search_id: str, config: SearchConfig) -> None:
        logs = self.home / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        env = os.environ | {"NAS_DATABASE_URL": self.store_url, "NAS_HOME": str(self.home)}
        with open(logs / f"search-{search_id}.log", "ab") as log:
            self._processes[search_id] = subprocess.Popen(
                [sys.executable, "-c", "from nas.cli import main; main()", "resume", search_id,
                 "--json", "--scheduled"], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=env, start_new_session=True)

    def alive(self, search_id: str) -> bool:
        process = self._processes.get(search_id)
        return process is not None and process.poll() is None

    def stop(self, search_id: str) -> None:
        process = self._processes.get(search_id)
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)  # checkpoint and exit (nas.signals)

    def reap(self) -> list[tuple[str, str]]:
        ended = []
        for search_id, process in list(self._processes.items()):
            code = process.poll()
            if code is not None:
                del self._processes[search_id]
                ended.append((search_id, f"`nas resume {search_id}` exited with status {code}"))
        return ended

    def capacity(self) -> dict[str, float]:
        import torch

        return {"cpus": float(os.cpu_count() or 1), "gpus": float(torch.cuda.device_count())}

    def health(self) -> str:
        return "ok"

    def close(self) -> None:
        self._processes.clear()


class RunScheduler:
    """Admission and supervision of the searches of one store (see the module docstring)."""

    def __init__(self, store: Store, launcher: Launcher, *, max_running: int,
                 ownership: OwnershipSettings | None = None, poll_seconds: float = 1.0,
                 stop_grace_seconds: float = 15.0) -> None:
        self.store, self.launcher, self.max_running = store, launcher, max_running
        self.ownership = ownership or OwnershipSettings.from_env()
        self.poll_seconds, self.stop_grace_seconds = poll_seconds, stop_grace_seconds
        self._launched: dict[str, float] = {}  # launched, not claimed yet: when
        self._stopping: dict[str, float] = {}  # cancelled: hard stop after this time
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="nas-runs", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.launcher.close()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, search_id: str) -> None:
        """The search was cancelled: its run stops at its next step (one launched but not
        started yet refuses to claim it), or is stopped after `stop_grace_seconds`. Its slot
        stays taken (in `_stopping`) until the run has ended."""
        with self._lock:
            self._stopping[search_id] = time.monotonic() + self.stop_grace_seconds
            self._launched.pop(search_id, None)  # whatever it does now, it is not a new run
        self.wake()

    def check_resources(self, config: SearchConfig) -> None:
        """`InvalidInput` when the config's runner asks for more than a run can ever get
        here (it would wait for ever)."""
        capacity = self.launcher.capacity()
        for field in ("cpus", "gpus"):
            asked = getattr(config.runner, field)
            if asked > capacity[field]:
                raise InvalidInput(f"runner.{field}: the search asks for {asked:g}; a run "
                                   f"gets at most {capacity[field]:g} here")

    def health(self) -> str:
        return self.launcher.health()

    def _loop(self) -> None:
        while not self._closed.is_set():
            try:
                self.tick()
            except Exception:  # the database may be away; try again next tick
                logger.exception("run scheduler tick failed")
            self._wake.wait(self.poll_seconds)
            self._wake.clear()

    def tick(self) -> None:
        with self._lock:
            self._reap()
            self._hard_stops()
            running = self._supervise_running()
            self._admit(running)

    def _reap(self) -> None:
        for search_id, how in self.launcher.reap():
            self._stopping.pop(search_id, None)
            if self._launched.pop(search_id, None) is None:
                continue
            record = self.store.get_search(search_id)
            if record.status is SearchStatus.QUEUED:  # died before it claimed the search
                self.store.set_status(search_id, SearchStatus.FAILED, error=f"the run {how} "
                                      f"before it started")

    def _hard_stops(self) -> None:
        now = time.monotonic()
        for search_id, deadline in list(self._stopping.items()):
            if not self.launcher.alive(search_id):
                del self._stopping[search_id]
            elif now >= deadline:
                logger.warning("search %s did not stop when cancelled; stopping its run",
                               search_id)
                self.launcher.stop(search_id)
                self._stopping[search_id] = now + self.stop_grace_seconds  # its slot until it ends

    def _supervise_running(self) -> set[str]:
        """The searches running now; relaunch those whose owner is gone."""
        running = set()
        for record in self.store.page_searches(status=SearchStatus.RUNNING, limit=1000).items:
            running.add(record.id)
            stale = record.is_stale(self.ownership.stale_seconds)
            if not stale:
                self._launched.pop(record.id, None)  # claimed
            elif not self.launcher.alive(record.id) and record.id not in self._launched:
                logger.warning("search %s has no live owner; resuming it", record.id)
                self._launch(record.id, record.config)
        return running

    def _admit(self, running: set[str]) -> None:
        now = time.monotonic()
        for search_id, launched_at in list(self._launched.items()):
            if now - launched_at > CLAIM_SECONDS and not self.launcher.alive(search_id):
                del self._launched[search_id]
        # runs that hold a slot: running searches, launched runs not started yet, cancelled
        # runs still winding down
        busy = running | set(self._launched) | set(self._stopping)
        free = self.max_running - len(busy)
        if free <= 0:
            return
        queued = self.store.page_searches(status=SearchStatus.QUEUED, limit=1000).items
        # A search resumed while its cancelled run still winds down waits for that run to end:
        # a second run would be refused the claim, and the cancel's hard stop is meant for the
        # old run only.
        startable = [record for record in sorted(queued, key=lambda record: record.created_at)
                     if record.id not in self._launched and not self.launcher.alive(record.id)]
        for record in startable[:free]:
            self._launch(record.id, record.config)

    def _launch(self, search_id: str, config: dict) -> None:
        self._launched[search_id] = time.monotonic()
        try:
            self.launcher.start(search_id, SearchConfig.model_validate(config))
        except Exception as error:
            self._launched.pop(search_id, None)
            logger.exception("could not start search %s", search_id)
            self.store.set_status(search_id, SearchStatus.FAILED,
                                  error=f"could not start its run: {type(error).__name__}: "
                                        f"{error}")

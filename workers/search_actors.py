"""`RayLauncher`: each search run by a detached Ray actor (`workers.runner.SearchRunner`) that
asks Ray for the CPUs and GPUs of the config's `runner` section, so an ENAS search trains its
supernet on a GPU node of the cluster, not in the API process.

Actors are named `nas-search-<id>` in the `nas` namespace, so a restarted server finds the
runs that are still going. An ended run's actor is killed, which frees its resources.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ray

from nas.config import SearchConfig
from workers.cluster import connect
from workers.runner import SearchRunner

logger = logging.getLogger(__name__)
NAMESPACE = "nas"
SHARED_SETTINGS = ("NAS_HEARTBEAT_SECONDS", "NAS_HEARTBEAT_STALE_SECONDS", "NAS_RESUME_LIMIT",
                   "NAS_DB_GRACE_SECONDS")


PREFIX = "nas-search-"


def actor_name(search_id: str) -> str:
    return f"{PREFIX}{search_id}"


class RayLauncher:
    def __init__(self, store_url: str, home: Path, address: str | None = None) -> None:
        with keeping_signal_handlers():
            connect(address)
        self.store_url, self.home = store_url, home.resolve()
        self._runs: dict[str, tuple[Any, Any]] = {}  # search id -> (actor, ref of its join)
        self._adopt_runs()

    def _adopt_runs(self) -> None:
        """Follow the runs that a previous server started (the actors outlive it), so that
        they are reaped, and their CPUs and GPUs freed, when their searches end."""
        for entry in ray.util.list_named_actors(all_namespaces=True):
            if entry["namespace"] != NAMESPACE or not entry["name"].startswith(PREFIX):
                continue
            search_id = entry["name"].removeprefix(PREFIX)
            actor = _existing_actor(search_id)
            if actor is not None:
                self._runs[search_id] = (actor, actor.join.remote())
                logger.info("following the run of search %s started before", search_id)

    def start(self, search_id: str, config: SearchConfig) -> None:
        self._kill(search_id)  # a relaunch replaces a run that lost its search
        actor = ray.remote(SearchRunner).options(
            name=actor_name(search_id), namespace=NAMESPACE, lifetime="detached",
            num_cpus=config.runner.cpus, num_gpus=config.runner.gpus, max_concurrency=4,
            runtime_env={"env_vars": runner_environment(self.home)},
        ).remote(self.store_url)
        actor.start.remote(search_id, scheduled=True)
        self._runs[search_id] = (actor, actor.join.remote())

    def alive(self, search_id: str) -> bool:
        run = self._runs.get(search_id)
        if run is None:
            return False
        ready, _ = ray.wait([run[1]], timeout=0)
        return not ready

    def stop(self, search_id: str) -> None:
        self._kill(search_id)

    def reap(self) -> list[tuple[str, str]]:
        ended = []
        for search_id in [key for key in self._runs if not self.alive(key)]:
            _, joined = self._runs[search_id]
            try:
                status = ray.get(joined, timeout=5)
                how = f"ended ({status.get('error') or status.get('status')})"
            except Exception as error:  # the actor died
                how = f"died: {type(error).__name__}"
            self._kill(search_id)
            ended.append((search_id, f"Ray actor {actor_name(search_id)} {how}"))
        return ended

    def capacity(self) -> dict[str, float]:
        totals = ray.cluster_resources()
        return {"cpus": totals.get("CPU", 0.0), "gpus": totals.get("GPU", 0.0)}

    def health(self) -> str:
        return "ok" if ray.is_initialized() else "Ray is not connected"

    def close(self) -> None:
        self._runs.clear()

    def _kill(self, search_id: str) -> None:
        run = self._runs.pop(search_id, None)
        actor = run[0] if run is not None else _existing_actor(search_id)
        if actor is not None:
            ray.kill(actor)


@contextmanager
def keeping_signal_handlers() -> Iterator[None]:
    """Keep this process's SIGTERM and SIGINT handlers through `ray.init`, which replaces
    SIGTERM's with a `sys.exit` that fires wherever the main thread is: in the server that
    skipped uvicorn's graceful shutdown, and the process aborted (`docker compose stop`)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for number, handler in saved.items():
            if handler is not None:
                signal.signal(number, handler)


def runner_environment(home: Path) -> dict[str, str]:
    """What a runner must share with the server that supervises it, whichever node it lands
    on: NAS_HOME, and the ownership and database settings that the server's staleness check
    assumes (a runner beating slower than the server's NAS_HEARTBEAT_STALE_SECONDS would be
    taken for dead and replaced while it runs)."""
    shared = {name: os.environ[name] for name in SHARED_SETTINGS if os.environ.get(name)}
    return shared | {"NAS_HOME": str(home)}


def _existing_actor(search_id: str) -> Any | None:
    """The actor of a run started earlier (by a server that restarted since), if any."""
    try:
        return ray.get_actor(actor_name(search_id), namespace=NAMESPACE)
    except ValueError:
        return None

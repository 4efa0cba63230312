"""The adapter between the search loop and Ray Tune: the one subclass of Tune's `Searcher`.

Tune's `Searcher` is a DeveloperAPI: `TUNE_INTERFACE` pins the signatures of the methods
`QueueSearcher` overrides, and `tests/test_tune_adapter.py` fails when an installed Ray's
differ, so an upgrade cannot change them unnoticed.

The loop and Tune share a `CandidateQueue`: a small Ray actor holding the submitted candidates,
the finished evaluations and the closed / cancelled flags. Tune pickles its searcher, stopper
and callbacks into its experiment state; what they hold is the actor's handle, which pickles as
a reference to the same actor, so no process-global registry is needed.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import ray
from ray.tune.search import Searcher
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

TUNE_INTERFACE: dict[str, tuple[str, ...]] = {
    "__init__": ("self", "metric", "mode"),
    "set_search_properties": ("self", "metric", "mode", "config", "spec"),
    "suggest": ("self", "trial_id"),
    "on_trial_complete": ("self", "trial_id", "result", "error"),
}
"""Tune's `Searcher` methods `QueueSearcher` overrides, with the parameters it expects."""
FINISHED = Searcher.FINISHED
POLL_SECONDS = 0.05


@ray.remote(num_cpus=0)
class _Queue:
    """The actor behind `CandidateQueue` (calls from one caller run in the order sent)."""

    def __init__(self) -> None:
        self.submissions: deque[dict[str, Any]] = deque()
        self.results: list[Any] = []
        self.closed = self.cancelled = False

    def submit(self, trial_config: dict[str, Any]) -> None:
        self.submissions.append(trial_config)

    def next(self) -> dict[str, Any] | str | None:
        if self.closed:
            return FINISHED
        return self.submissions.popleft() if self.submissions else None

    def put_result(self, result: Any) -> None:
        self.results.append(result)

    def take_results(self) -> list[Any]:
        taken, self.results = self.results, []
        return taken

    def close(self, cancel: bool) -> None:
        self.closed = True
        self.cancelled = self.cancelled or cancel

    def is_cancelled(self) -> bool:
        return self.cancelled


class CandidateQueue:
    """Candidates in, evaluations out, between the search loop and Tune's thread; picklable
    (it is the actor's handle)."""

    def __init__(self) -> None:
        # On the creator's node, not wherever Ray finds room (it needs no CPU, so any node
        # would do): on another node it would die with that node and take the search with it.
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        self._actor = _Queue.options(scheduling_strategy=here).remote()

    def node_id(self) -> str:
        """The node the actor lives on."""
        return ray.get(self._actor.__ray_call__.remote(
            lambda _: ray.get_runtime_context().get_node_id()))

    def submit(self, trial_config: dict[str, Any]) -> None:
        self._actor.submit.remote(trial_config)

    def next_submission(self) -> dict[str, Any] | str | None:
        """The next submitted trial config, None when none waits, `FINISHED` once closed."""
        return ray.get(self._actor.next.remote())

    def put_result(self, result: Any) -> None:
        ray.get(self._actor.put_result.remote(result))

    def results(self, timeout: float) -> list[Any]:
        """What finished since the last call, waiting up to `timeout` s for the first."""
        deadline = time.monotonic() + timeout
        while True:
            taken = ray.get(self._actor.take_results.remote())
            if taken or time.monotonic() >= deadline:
                return taken
            time.sleep(POLL_SECONDS)

    def close(self, cancel: bool = False) -> None:
        """No more candidates (`cancel`: and stop the running ones)."""
        ray.get(self._actor.close.remote(cancel))

    def cancelled(self) -> bool:
        return ray.get(self._actor.is_cancelled.remote())

    def release(self) -> None:
        """End the actor (nothing may use the queue afterwards)."""
        ray.kill(self._actor)


class QueueSearcher(Searcher):
    """Suggests the candidates submitted to the queue, in order; FINISHED once it is closed.
    Results reach the search loop through the experiment's callback, not through here."""

    def __init__(self, queue: CandidateQueue, metric: str, mode: str) -> None:
        super().__init__(metric=metric, mode=mode)
        self.queue = queue

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict,
                              **spec: Any) -> bool:
        return True  # metric and mode are fixed at construction; the config is the queue's

    def suggest(self, trial_id: str) -> dict | str | None:
        return self.queue.next_submission()  # None: Tune asks again shortly

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        """Nothing to learn: the search loop's strategy is told, not this searcher."""

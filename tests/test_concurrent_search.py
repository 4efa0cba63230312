"""The asynchronous search loop, with a thread-pool evaluator (no Ray): recording as candidates
finish, telling in batches, checkpoints, resume after a crash and cancellation."""

import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from nas.config import parse_config
from nas.evaluators import ConcurrentEvaluator, SyntheticEvaluator
from nas.search import create_search, run_search
from nas.store import ArchitectureState, SearchStatus

OPEN = {ArchitectureState.WAITING, ArchitectureState.RUNNING}


def _config(**overrides):
    data = {
        "name": "async", "seed": 5, "strategy": {"name": "reinforce"},
        "evaluator": {"name": "synthetic"}, "space": {"blocks": 3},
        "budget": {"architectures": 12}, "samples_per_step": 3,
    }
    data.update(overrides)
    return parse_config(data)


class ThreadedSynthetic(ConcurrentEvaluator):
    """Synthetic scores, `max_concurrent` candidates at once in threads, each taking a different
    time; `wait` raises ('the driver died') once `crash_after` evaluations were handed back, and
    the search is cancelled once `cancel_after` were."""

    name = "synthetic"

    def __init__(self, config, max_concurrent=3, crash_after=None, cancel_after=None,
                 store=None, search_id=None):
        self.inner, self.max_concurrent = SyntheticEvaluator(config), max_concurrent
        self.crash_after, self.cancel_after = crash_after, cancel_after
        self.store, self.search_id = store, search_id
        self.pool, self.done, self.returned = ThreadPoolExecutor(max_concurrent), queue.Queue(), 0
        self.running, self.peak, self.lock = 0, 0, threading.Lock()

    def submit(self, key, genotype):
        def work():
            with self.lock:
                self.running += 1
                self.peak = max(self.peak, self.running)
            time.sleep(0.002 * (key * 7 % 5))
            with self.lock:
                self.running -= 1
            self.done.put((key, self.inner.evaluate([genotype])[0]))
        self.pool.submit(work)

    def wait(self, timeout):
        if self.crash_after is not None and self.returned >= self.crash_after:
            raise RuntimeError("the driver died")
        if self.cancel_after is not None and self.returned >= self.cancel_after:
            self.store.set_status(self.search_id, SearchStatus.CANCELLED)
            self.cancel_after = None
        try:
            finished = [self.done.get(timeout=timeout)]
        except queue.Empty:
            return []
        self.returned += 1
        return finished

    def cancel(self):
        return []

    def close(self):
        self.pool.shutdown(wait=True)


def test_every_candidate_is_recorded_as_it_finishes_and_told_in_batches(store):
    config = _config()
    record = create_search(store, config)
    evaluator = ThreadedSynthetic(config)
    finished = run_search(store, record.id, evaluator=evaluator)
    rows = store.architectures(record.id, order="step")
    assert finished.status is SearchStatus.FINISHED
    assert len(rows) == 12 and {row.state for row in rows} == {ArchitectureState.COMPLETE}
    assert evaluator.peak <= 3
    # a row's step is the number of tells before it was asked: 4 tells of 3 rewards
    assert {row.step for row in rows} <= {0, 1, 2, 3} and rows[0].step == 0
    assert store.latest_checkpoint(record.id).step == 4


def test_resume_after_a_crash_reruns_the_unfinished_rows(store):
    config = _config(checkpoint_every=1)
    record = create_search(store, config)
    with pytest.raises(RuntimeError, match="the driver died"):
        run_search(store, record.id, evaluator=ThreadedSynthetic(config, crash_after=7))
    crashed = store.architectures(record.id)
    assert store.get_search(record.id).status is SearchStatus.FAILED
    assert any(row.state in OPEN for row in crashed)
    resumed = run_search(store, record.id, evaluator=ThreadedSynthetic(config))
    rows = store.architectures(record.id)
    assert resumed.status is SearchStatus.FINISHED and len(rows) == 12
    assert {row.state for row in rows} == {ArchitectureState.COMPLETE}


def test_cancelling_closes_the_running_candidates(store):
    config = _config(budget={"architectures": 30})
    record = create_search(store, config)
    evaluator = ThreadedSynthetic(config, cancel_after=5, store=store, search_id=record.id)
    cancelled = run_search(store, record.id, evaluator=evaluator)
    rows = store.architectures(record.id)
    assert cancelled.status is SearchStatus.CANCELLED and len(rows) < 30
    assert not any(row.state in OPEN for row in rows)
    for row in rows:
        assert row.state is ArchitectureState.COMPLETE or "cancelled" in row.error

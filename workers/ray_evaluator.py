"""`RayEvaluator`: standalone candidates trained as Ray Tune trials, handed back as each ends.

One Tune experiment runs in a background thread for the evaluator's lifetime. Its searcher
(`workers.tune_searcher.QueueSearcher`, the one adapter to Tune's searcher interface) hands
Tune the candidates the search loop submitted through a `CandidateQueue` (a Ray actor); a
callback turns every ended trial into an `Evaluation` on the same queue:

- the trial reported its evaluation (its last epoch) -> that evaluation (COMPLETE, or FAIL when
  the candidate itself failed: no retry for a deterministic error);
- the scheduler (ASHA) stopped it before its last epoch -> PRUNED with its last metrics, the
  reward computed from its last validation accuracy (the strategy learns it was weak);
- its worker died more than `retries` times (Tune's `FailureConfig`) -> FAIL with the error.

Trial actors are reused (`reuse_actors`): torch is imported once per worker, not per candidate.
Tune keeps one idle actor when no trial waits; when candidates train faster than a new actor
starts (tiny ones on a loaded machine), later trials may keep taking that one actor and run
one at a time. Candidates that train for longer than an actor's start-up are not affected.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

from nas.config import SearchConfig
from nas.data import DataSplits
from nas.evaluators import (
    ConcurrentEvaluator,
    Evaluation,
    register_workers_evaluator,
)
from nas.states import ArchitectureState
from searchspace.genotype import Genotype
from workers.cluster import connect
from workers.datasets import shared_data
from workers.trial import evaluation_from, train_candidate
from workers.tune_searcher import CandidateQueue, QueueSearcher

logger = logging.getLogger(__name__)
METRIC = "val_accuracy"
CANCEL_CHECK_SECONDS = 0.2


class ResultCollector(tune.Callback):
    """Puts `(key, Evaluation)` in the queue's results as each trial ends."""

    def __init__(self, queue: CandidateQueue, config: SearchConfig) -> None:
        self.queue, self.config = queue, config

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        result = dict(trial.last_result or {})
        evaluation = evaluation_from(result) or self._pruned(result)
        metrics = evaluation.metrics.with_values(worker_failures=trial.num_failures)
        self.queue.put_result((trial.config["key"], replace(evaluation, metrics=metrics)))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        failures = trial.num_failures
        error = _error_text(trial) or "the trial failed without an error message"
        self.queue.put_result((trial.config["key"], Evaluation(
            state=ArchitectureState.FAIL, error=f"failed {failures} time(s) (retries: "
            f"{self.config.workers.retries}): {error}",
            metrics={"last_result": _plain(trial.last_result or {})})))

    def _pruned(self, result: dict[str, Any]) -> Evaluation:
        accuracy = result.get(METRIC)
        params, flops = result.get("params"), result.get("multiply_adds")
        reward = None
        if accuracy is not None:
            reward = self.config.objective.reward(accuracy, params, flops)
        return Evaluation(state=ArchitectureState.PRUNED, reward=reward, accuracy=accuracy,
                          params=params, flops=flops,
                          metrics={"stopped_at_epoch": result.get("epoch"),
                                   "last_result": _plain(result)})


class StopWhenCancelled(tune.Stopper):
    """Stops every trial (and the experiment) once the queue is cancelled (asked at most
    every `CANCEL_CHECK_SECONDS`: Tune calls `stop_all` at every step of its loop)."""

    def __init__(self, queue: CandidateQueue) -> None:
        self.queue = queue
        self._cancelled, self._checked = False, 0.0

    def __call__(self, trial_id: str, result: dict) -> bool:
        return self.stop_all()

    def stop_all(self) -> bool:
        if not self._cancelled and time.monotonic() - self._checked >= CANCEL_CHECK_SECONDS:
            self._cancelled, self._checked = self.queue.cancelled(), time.monotonic()
        return self._cancelled


class RayEvaluator(ConcurrentEvaluator):
    """Trains each submitted genotype as one Tune trial with the config's resources."""

    name = "standalone"

    def __init__(self, config: SearchConfig, data: DataSplits | None,
                 weights_dir: Path | None = None) -> None:
        if config.workers is None:
            raise ValueError("RayEvaluator needs the config's workers section")
        self.config, self.workers = config, config.workers
        self.max_concurrent = config.workers.max_concurrent
        connect(config.workers.address)
        self._queue = CandidateQueue()
        self._closed = False
        self._running: set[int] = set()
        self._storage = tempfile.mkdtemp(prefix="nas-tune-")
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._fit, args=(self._tuner(data, weights_dir),), name="nas-tune",
            daemon=True)
        self._thread.start()

    def submit(self, key: int, genotype: Genotype) -> None:
        self._running.add(key)
        self._queue.submit({"key": key, "genotype": genotype.to_json()})

    def wait(self, timeout: float) -> list[tuple[int, Evaluation]]:
        finished = self._queue.results(timeout)
        if not finished and not self._thread.is_alive():
            raise RuntimeError(f"the Ray Tune experiment stopped: {self._error!r}")
        for key, _ in finished:
            self._running.discard(key)
        return finished

    def cancel(self) -> list[int]:
        stopped = sorted(self._running)
        if not self._closed:
            self._queue.close(cancel=True)
        self.close()
        return stopped

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # trials still in flight when the loop closes it (the loop failed) are stopped
        self._queue.close(cancel=bool(self._running))
        self._thread.join(timeout=60)
        self._queue.release()
        shutil.rmtree(self._storage, ignore_errors=True)

    def _tuner(self, data: DataSplits | None, weights_dir: Path | None) -> tune.Tuner:
        workers, epochs = self.workers, self.config.evaluator.epochs
        search_config = self.config.model_dump(mode="json")
        if path := self.config.dataset.resolved_path():  # trials run in their own folders
            search_config["dataset"] |= {"path": str(path.resolve()), "id": None}
        trainable = tune.with_parameters(
            train_candidate, search_config=search_config,
            data=shared_data(self.config, data),
            weights_dir=str(weights_dir.resolve()) if weights_dir else None)
        resources = {"cpu": workers.cpus_per_trial, "gpu": workers.gpus_per_trial}
        scheduler = FIFOScheduler()
        if workers.early_stopping == "asha":
            scheduler = ASHAScheduler(time_attr="training_iteration", max_t=epochs,
                                      grace_period=workers.grace_period,
                                      reduction_factor=workers.reduction_factor)
        return tune.Tuner(
            tune.with_resources(trainable, resources),
            tune_config=tune.TuneConfig(
                metric=METRIC, mode="max",
                search_alg=QueueSearcher(self._queue, metric=METRIC, mode="max"),
                scheduler=scheduler, num_samples=-1, max_concurrent_trials=self.max_concurrent,
                reuse_actors=True, trial_dirname_creator=_trial_dirname),
            run_config=tune.RunConfig(
                name="candidates", storage_path=self._storage, verbose=0,
                failure_config=tune.FailureConfig(max_failures=workers.retries),
                stop=StopWhenCancelled(self._queue),
                callbacks=[ResultCollector(self._queue, self.config)]),
        )

    def _fit(self, tuner: tune.Tuner) -> None:
        try:
            # Tune logs the per-trial files it is told not to write as missing: keep it quiet.
            logging.getLogger("ray.tune").setLevel(logging.ERROR)
            tuner.fit()
        except BaseException as error:  # reported by `wait`
            self._error = error
            logger.exception("the Ray Tune experiment failed")


def _trial_dirname(trial: Any) -> str:
    return f"candidate_{trial.config['key']}_{trial.trial_id}"


def _error_text(trial: Any) -> str:
    """The last line of a trial's error (the exception), without Ray's traceback."""
    try:
        error = trial.get_error()
    except Exception:  # the error file may be gone with its node
        error = None
    lines = [line.strip() for line in str(error or "").splitlines() if line.strip()]
    interesting = [line for line in lines if "Error" in line or "died" in line]
    return (interesting or lines or [""])[-1][:2000]


def _plain(result: dict[str, Any]) -> dict[str, Any]:
    """The numbers of a Tune result (JSON-safe for the store)."""
    return {key: value for key, value in result.items()
            if isinstance(value, int | float | str | bool) and key != "evaluation"}


register_workers_evaluator(RayEvaluator)

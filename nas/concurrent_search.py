"""The asynchronous search loop, for evaluators that train candidates concurrently (Ray workers).

Up to `max_concurrent` candidates are in flight: one is asked whenever a slot frees, recorded
RUNNING, and finished in the store the moment it comes back. The strategy is told as soon as
`samples_per_step` rewards are in (Zoph et al. updated their controller asynchronously), so a
slow candidate does not stall the others.

A row's `step` is the number of tells before it was asked. A checkpoint is written after every
`checkpoint_interval` tells and lists the rows not told yet (`outstanding`). Resuming drops the
rows asked after the checkpoint (the loop asks again), re-runs the outstanding rows still open,
tells those that came back and abandons the others, so no row stays WAITING or RUNNING and no ask
stays open in the strategy. Cancelling stops the running candidates, closes their rows as FAIL
and abandons them.
"""

from __future__ import annotations

import logging
import time

from nas.config import SearchConfig
from nas.evaluators import ConcurrentEvaluator, Evaluation
from nas.loop import (
    LoopState,
    ProgressCallback,
    StepReport,
    budget_spent,
    cancelled,
    checkpoint,
    finish,
)
from nas.store import ArchitectureState, Store
from nas.strategies import Strategy
from searchspace.genotype import Genotype

logger = logging.getLogger(__name__)

OPEN_STATES = (ArchitectureState.WAITING, ArchitectureState.RUNNING)


class _Loop:
    """One run of the asynchronous loop; its state lives here between the helpers."""

    def __init__(self, store: Store, search_id: str, config: SearchConfig, strategy: Strategy,
                 evaluator: ConcurrentEvaluator, state: LoopState,
                 progress: ProgressCallback | None) -> None:
        self.store, self.search_id, self.config = store, search_id, config
        self.strategy, self.evaluator, self.state, self.progress = (
            strategy, evaluator, state, progress)
        self.in_flight: dict[int, Genotype] = {}
        self.untold: list[tuple[int, Genotype, float]] = []

    def run(self, started: float) -> bool:
        """Run to the end of the budget; True when the search was cancelled."""
        self._reopen(self.state.extra.get("outstanding", []))
        while True:
            if self._cancelled():
                self._cancel()
                return True
            self._fill()
            if not self.in_flight:
                break
            for key, evaluation in self.evaluator.wait(timeout=1.0):
                self._finished(key, evaluation)
            self.state.elapsed_seconds = time.perf_counter() - started
        if self.untold:
            self._tell()
        self.state.extra = {}  # nothing outstanding for the final checkpoint
        return False

    def _reopen(self, outstanding: list[int]) -> None:
        """Re-run the checkpoint's outstanding rows that are still open; queue the rest."""
        for architecture_id in outstanding:
            row = self.store.get_architecture(architecture_id)
            if row.state in OPEN_STATES:
                self._submit(architecture_id, row.genotype)
            elif row.reward is not None:
                self.untold.append((architecture_id, row.genotype, row.reward))
            else:  # it failed or was cancelled after the checkpoint
                self.strategy.abandon([row.genotype])
        if self.in_flight:
            self.store.add_event(self.search_id, "resumed",
                                 f"re-running {len(self.in_flight)} unfinished candidates")

    def _fill(self) -> None:
        """Ask and submit candidates until every slot is busy or the budget is spent."""
        while (len(self.in_flight) < self.evaluator.max_concurrent
               and not budget_spent(self.config, self.state)):
            genotype = self.strategy.ask(1)[0]
            [architecture_id] = self.store.add_architectures(
                self.search_id, self.state.step, [genotype], self.evaluator.name)
            self._submit(architecture_id, genotype)
            self.state.architectures += 1

    def _submit(self, architecture_id: int, genotype: Genotype) -> None:
        if self.store.get_architecture(architecture_id).state is ArchitectureState.WAITING:
            self.store.start_architecture(architecture_id)
        self.evaluator.submit(architecture_id, genotype)
        self.in_flight[architecture_id] = genotype

    def _finished(self, architecture_id: int, evaluation: Evaluation) -> None:
        genotype = self.in_flight.pop(architecture_id, None)
        if genotype is None:
            logger.warning("ignoring an evaluation for architecture %d: not in flight",
                           architecture_id)
            return
        finish(self.store, architecture_id, evaluation)
        if evaluation.reward is not None:
            self.untold.append((architecture_id, genotype, evaluation.reward))
        else:
            self.strategy.abandon([genotype])
        if len(self.untold) >= self.config.samples_per_step:
            self._tell()

    def _tell(self) -> None:
        """Tell the strategy the rewards that are in; checkpoint every `checkpoint_interval`."""
        _, genotypes, rewards = zip(*self.untold, strict=True)
        self.strategy.tell(list(genotypes), list(rewards))
        self.untold.clear()
        self.state.step += 1
        logger.info("tell %d: %d architectures asked", self.state.step, self.state.architectures)
        if self.state.step % self.config.checkpoint_interval == 0:
            self.state.extra = {"outstanding": sorted(self.in_flight)}
            checkpoint(self.store, self.search_id, self.strategy, self.evaluator, self.state)
        if self.progress is not None:
            best = self.store.get_search(self.search_id).best_reward
            self.progress(StepReport(self.state.step, self.state.architectures, best,
                                     self.state.elapsed_seconds))

    def _cancelled(self) -> bool:
        return cancelled(self.store, self.search_id)

    def _cancel(self) -> None:
        stopped = self.evaluator.cancel()
        for architecture_id in self.in_flight:
            self.store.finish_architecture(
                architecture_id, state=ArchitectureState.FAIL,
                error="cancelled: the search was cancelled while this candidate trained")
        self.store.add_event(self.search_id, "cancelled",
                             f"cancelled after {self.state.architectures} architectures; "
                             f"stopped {len(stopped)} running candidates")
        if self.in_flight:
            self.strategy.abandon(list(self.in_flight.values()))
        self.in_flight.clear()


def run_concurrent(store: Store, search_id: str, config: SearchConfig, strategy: Strategy,
                   evaluator: ConcurrentEvaluator, state: LoopState, started: float,
                   progress: ProgressCallback | None = None) -> bool:
    """Run the search's budget with candidates in flight concurrently; True when cancelled.
    `started` is the `time.perf_counter()` the elapsed seconds count from."""
    try:
        return _Loop(store, search_id, config, strategy, evaluator, state, progress).run(started)
    finally:
        evaluator.close()

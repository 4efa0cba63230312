"""The search loop: ask, score, tell, record, checkpoint; resumable and cancellable.

`create_search` validates a config and queues a search row; `run_search` runs (or resumes)
it. Every asked genotype is recorded before it is scored and ends COMPLETE, PRUNED or FAIL.
A checkpoint (strategy state, RNG states, step, elapsed seconds) is written every
`checkpoint_every` steps; resuming drops the rows recorded after the last checkpoint and
continues, so a resumed run asks the same genotypes as an uninterrupted one with that seed.
Cancellation (the search's status set to `cancelled`) stops at the next step; Ctrl-C, SIGTERM
or SIGHUP (see `nas.signals`) stop at once: a checkpoint when the loop is between steps, status
`interrupted` (resumable).

A run owns its search (`nas.ownership`): a second run of the same search is refused while the
first is alive, and every write goes through a store fenced by the run's lease, so a run whose
search was taken over stops (`OwnershipLost`) without writing anything more.
Evaluators that train candidates concurrently (Ray workers) take the asynchronous path of
`nas.concurrent_search` instead of the step loop below.
"""

from __future__ import annotations

import io
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from nas.config import SearchConfig
from nas.data import load_dataset
from nas.evaluators import ConcurrentEvaluator, Evaluation, Evaluator, create_evaluator
from nas.ownership import OwnershipSettings, owning
from nas.paths import weights_dir
from nas.store import (
    ArchitectureRecord,
    ArchitectureState,
    OwnershipLost,
    SearchRecord,
    SearchStatus,
    Store,
    StoreUnavailable,
)
from nas.strategies import Strategy, create

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepReport:
    """What the loop reports after each step (for progress bars and logs)."""

    step: int
    architectures: int
    best_reward: float | None
    elapsed_seconds: float


ProgressCallback = Callable[[StepReport], None]


@dataclass
class LoopState:
    step: int = 0
    architectures: int = 0
    elapsed_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    """What a loop keeps in its checkpoint besides the above (the concurrent loop's rows)."""
    checkpoint_seconds: float = 0.0
    """How long the last checkpoint took to write: reserved for the final one."""


def create_search(store: Store, config: SearchConfig) -> SearchRecord:
    """Queue a search for a validated config (the dataset is checked before the row exists)."""
    if config.evaluator.name != "synthetic":
        open_dataset(config)
    return store.create_search(config.name, config.model_dump(mode="json"), config.seed)


def open_dataset(config: SearchConfig):
    dataset = config.dataset
    return load_dataset(
        dataset.name, dataset.resolved_path(), valid_fraction=dataset.valid_fraction,
        seed=config.seed, input_size=dataset.input_size, limit=dataset.limit,
    )


def run_search(
    store: Store, search_id: str, *, progress: ProgressCallback | None = None,
    evaluator: Evaluator | None = None, ownership: OwnershipSettings | None = None,
) -> SearchRecord:
    """Run a queued search, or resume a failed, cancelled, interrupted or abandoned one, to its
    end, as its one owner (`SearchOwned` while another live process runs it)."""
    config = SearchConfig.model_validate(store.get_search(search_id).config)
    with owning(store, search_id, ownership) as owned:
        _run_owned(owned, search_id, config, progress, evaluator)
    return store.get_search(search_id)


def _run_owned(store: Store, search_id: str, config: SearchConfig,
               progress: ProgressCallback | None, evaluator: Evaluator | None) -> None:
    """The run itself, writing through the fenced `store` only."""
    state = LoopState()
    between_steps, checkpointed = False, None
    try:
        strategy = create(config.strategy.name, config.space.build(), seed=config.seed,
                          **config.strategy.options)
        if evaluator is None:
            needs_data = config.evaluator.name != "synthetic"
            evaluator = create_evaluator(config, open_dataset(config) if needs_data else None,
                                         weights_dir() / search_id)
        state = _restore(store, search_id, strategy, evaluator)
        store.add_event(search_id, "started", f"running from step {state.step}",
                        {"step": state.step, "architectures": state.architectures})
        started = time.perf_counter() - state.elapsed_seconds
        evaluator.set_deadline(_deadline(config, started, state))
        between_steps, checkpointed = True, state.step
        if isinstance(evaluator, ConcurrentEvaluator):
            from nas.concurrent_search import run_concurrent

            between_steps = False  # its checkpoints are taken in the loop only
            if run_concurrent(store, search_id, config, strategy, evaluator, state, started,
                              progress):
                return
        while not _budget_spent(
                config, state, evaluator.reserved_seconds() + state.checkpoint_seconds):
            if _cancelled(store, search_id):
                store.add_event(search_id, "cancelled", f"cancelled before step {state.step}")
                return
            between_steps = False
            evaluator.before_step(state.step, strategy.ask)
            _run_step(store, search_id, config, strategy, evaluator, state)
            state.elapsed_seconds = time.perf_counter() - started
            between_steps = True
            if state.step % config.checkpoint_interval == 0:
                _checkpoint(store, search_id, strategy, evaluator, state)
                checkpointed = state.step
                evaluator.set_deadline(_deadline(config, started, state))
            if progress is not None:
                best = store.get_search(search_id).best_reward
                progress(StepReport(state.step, state.architectures, best, state.elapsed_seconds))
        between_steps = False
        _record_derived(store, search_id, evaluator, strategy, state)
    except KeyboardInterrupt as interrupt:
        if between_steps and checkpointed != state.step:
            _checkpoint(store, search_id, strategy, evaluator, state)
        reason = getattr(interrupt, "reason", "interrupted")
        if store.get_search(search_id).status is not SearchStatus.CANCELLED:  # stays cancelled
            store.set_status(search_id, SearchStatus.INTERRUPTED, error=reason)
        store.add_event(search_id, "interrupted", f"{reason} at step {state.step}")
        raise
    except (OwnershipLost, StoreUnavailable):
        raise  # another process owns the search, or the database is gone: write nothing
    except Exception as error:
        store.set_status(search_id, SearchStatus.FAILED, error=f"{type(error).__name__}: {error}")
        store.add_event(search_id, "failed", str(error))
        raise
    finally:
        if evaluator is not None:
            evaluator.close()
    _checkpoint(store, search_id, strategy, evaluator, state)
    store.add_event(search_id, "finished", f"{state.architectures} architectures",
                    {"architectures": state.architectures})
    store.set_status(search_id, SearchStatus.FINISHED)


def _cancelled(store: Store, search_id: str) -> bool:
    """Whether the search was cancelled; `OwnershipLost` when the fenced `store`'s lease is
    not current any more (checked here too, so a run that lost its search stops before it
    spends a step's work that no write could record)."""
    record = store.get_search(search_id)
    lease = store.lease
    if lease is not None and (record.owner, record.owner_epoch) != (lease.owner, lease.epoch):
        raise OwnershipLost(f"lost ownership of search {search_id} (epoch {lease.epoch}; now "
                            f"{record.owner or 'released'}): this process stops without writing")
    return record.status is SearchStatus.CANCELLED


def best_architectures(store: Store, search_id: str, limit: int | None = None
                       ) -> list[ArchitectureRecord]:
    """The best architectures by reward: the derived ones when the evaluator derived any (ENAS
    candidates' rewards come from a single validation batch), else the candidates. Transferred
    networks (scored on another dataset) are never mixed in."""
    role = "derived" if store.count_architectures(search_id, role="derived") else "candidate"
    return store.architectures(search_id, order="reward", limit=limit, role=role)


def _deadline(config: SearchConfig, started: float, state: LoopState) -> float | None:
    """When the evaluator's work must end: the time budget less the final checkpoint."""
    if config.budget.seconds is None:
        return None
    return started + config.budget.seconds - state.checkpoint_seconds


def _budget_spent(config: SearchConfig, state: LoopState, reserved_seconds: float = 0.0) -> bool:
    """Whether the loop must stop asking: the architectures are spent, or the time budget less
    what the evaluator reserves for its end (ENAS's derivation)."""
    budget = config.budget
    if budget.architectures is not None and state.architectures >= budget.architectures:
        return True
    return (budget.seconds is not None
            and state.elapsed_seconds + reserved_seconds >= budget.seconds)


def _run_step(
    store: Store, search_id: str, config: SearchConfig, strategy: Strategy,
    evaluator: Evaluator, state: LoopState,
) -> None:
    count = config.samples_per_step
    if config.budget.architectures is not None:
        count = min(count, config.budget.architectures - state.architectures)
    genotypes = strategy.ask(count)
    ids = store.add_architectures(search_id, state.step, genotypes, evaluator.name)
    for architecture_id in ids:
        store.start_architecture(architecture_id)
    evaluations = evaluator.evaluate(genotypes)
    told_genotypes, told_rewards = [], []
    for architecture_id, genotype, evaluation in zip(ids, genotypes, evaluations, strict=True):
        _finish(store, architecture_id, evaluation)
        if evaluation.reward is not None:
            told_genotypes.append(genotype)
            told_rewards.append(evaluation.reward)
    if told_genotypes:
        strategy.tell(told_genotypes, told_rewards)
    state.step += 1
    state.architectures += len(genotypes)
    logger.info("step %d: %d architectures", state.step, state.architectures)


def _record_derived(store: Store, search_id: str, evaluator: Evaluator, strategy: Strategy,
                    state: LoopState) -> None:
    """Record the evaluator's final candidates (ENAS's derived cells) with role 'derived'."""
    if store.count_architectures(search_id, role="derived"):
        return  # recorded before an interruption: keep them
    derived = evaluator.derive(strategy.ask)
    if not derived:
        return
    genotypes = [genotype for genotype, _ in derived]
    ids = store.add_architectures(search_id, state.step, genotypes, evaluator.name,
                                  role="derived")
    for architecture_id, (_, evaluation) in zip(ids, derived, strict=True):
        _finish(store, architecture_id, evaluation)
    store.add_event(search_id, "derived", f"{len(ids)} derived architectures",
                    {"rewards": [evaluation.reward for _, evaluation in derived]})


def _finish(store: Store, architecture_id: int, evaluation: Evaluation) -> None:
    store.finish_architecture(
        architecture_id, state=ArchitectureState(evaluation.state), reward=evaluation.reward,
        accuracy=evaluation.accuracy, params=evaluation.params, flops=evaluation.flops,
        latency_ms=evaluation.latency_ms, train_seconds=evaluation.train_seconds,
        metrics=evaluation.metrics, error=evaluation.error,
    )


def _checkpoint(store: Store, search_id: str, strategy: Strategy, evaluator: Evaluator,
                state: LoopState) -> None:
    began = time.perf_counter()
    buffer = io.BytesIO()
    torch.save({
        "extra": state.extra,
        "strategy": strategy.state_dict(),
        "evaluator": evaluator.state_dict(),
        "step": state.step,
        "architectures": state.architectures,
        "elapsed_seconds": state.elapsed_seconds,
        "python_random": random.getstate(),
        "torch_random": torch.get_rng_state(),
    }, buffer)
    store.save_checkpoint(search_id, state.step, buffer.getvalue())
    state.checkpoint_seconds = time.perf_counter() - began


def _restore(store: Store, search_id: str, strategy: Strategy, evaluator: Evaluator
             ) -> LoopState:
    checkpoint = store.latest_checkpoint(search_id)
    if checkpoint is None:
        store.delete_architectures_after(search_id, -1)
        return LoopState()
    payload = torch.load(io.BytesIO(checkpoint.payload), weights_only=True)
    strategy.load_state_dict(payload["strategy"])
    evaluator.load_state_dict(payload["evaluator"])
    random.setstate(payload["python_random"])
    torch.set_rng_state(payload["torch_random"])
    removed = store.delete_architectures_after(search_id, payload["step"] - 1)
    if removed:
        store.add_event(search_id, "resumed", f"dropped {removed} architectures recorded after "
                        f"the checkpoint at step {payload['step']}")
    return LoopState(payload["step"], payload["architectures"], payload["elapsed_seconds"],
                     payload.get("extra", {}))

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

import logging
import time

from nas import loop
from nas.concurrent_search import run_concurrent
from nas.config import SearchConfig, check_new_search
from nas.data import check_dataset, load_dataset
from nas.evaluators import ConcurrentEvaluator, Evaluator, create_evaluator
from nas.loop import LoopState, ProgressCallback, StepReport
from nas.ownership import OwnershipSettings, owning
from nas.paths import weights_dir
from nas.states import ACTIVE_STATUSES
from nas.store import (
    ArchitectureRole,
    ArchitectureState,
    OwnershipLost,
    SearchRecord,
    SearchStatus,
    Store,
    StoreUnavailable,
)
from nas.strategies import IncompatibleState, Strategy, create

logger = logging.getLogger(__name__)
__all__ = ["LoopState", "ProgressCallback", "StepReport", "create_search",
           "open_dataset", "run_search"]


def create_search(store: Store, config: SearchConfig) -> SearchRecord:
    """Queue a search for a validated config. Its dataset is checked (`check_dataset`: the
    files are there) before the row exists, and loaded only when the search runs."""
    check_new_search(config)
    if config.evaluator.name != "synthetic":
        dataset = config.dataset
        check_dataset(dataset.name, dataset.resolved_path(),
                      valid_fraction=dataset.valid_fraction, input_size=dataset.input_size,
                      limit=dataset.limit)
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
    scheduled: bool = False,
) -> SearchRecord:
    """Run a queued search, or resume a failed, cancelled, interrupted or abandoned one, to its
    end, as its one owner (`SearchOwned` while another live process runs it). A `scheduled`
    run (one the server launched) runs only a queued or running search: one cancelled before
    the run claimed it stays cancelled (`InvalidTransition`)."""
    config = SearchConfig.model_validate(store.get_search(search_id).config)
    only_from = ACTIVE_STATUSES if scheduled else None
    with owning(store, search_id, ownership, only_from=only_from) as owned:
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
        state = loop.restore(store, search_id, strategy, evaluator)
        store.add_event(search_id, "started", f"running from step {state.step}",
                        {"step": state.step, "architectures": state.architectures})
        started = time.perf_counter() - state.elapsed_seconds
        evaluator.set_deadline(loop.deadline(config, started, state))
        between_steps, checkpointed = True, state.step
        if isinstance(evaluator, ConcurrentEvaluator):
            between_steps = False  # its checkpoints are taken in the loop only
            if run_concurrent(store, search_id, config, strategy, evaluator, state, started,
                              progress):
                return
        while not loop.budget_spent(
                config, state, evaluator.reserved_seconds() + state.checkpoint_seconds):
            if loop.cancelled(store, search_id):
                store.add_event(search_id, "cancelled", f"cancelled before step {state.step}")
                return
            between_steps = False
            evaluator.before_step(state.step, strategy)
            _run_step(store, search_id, config, strategy, evaluator, state)
            state.elapsed_seconds = time.perf_counter() - started
            between_steps = True
            if state.step % config.checkpoint_interval == 0:
                loop.checkpoint(store, search_id, strategy, evaluator, state)
                checkpointed = state.step
                evaluator.set_deadline(loop.deadline(config, started, state))
            if progress is not None:
                best = store.get_search(search_id).best_reward
                progress(StepReport(state.step, state.architectures, best, state.elapsed_seconds))
        between_steps = False
        _record_derived(store, search_id, evaluator, strategy, state)
        _check_some_scored(store, search_id, state)
    except KeyboardInterrupt as interrupt:
        if between_steps and checkpointed != state.step:
            loop.checkpoint(store, search_id, strategy, evaluator, state)
        reason = getattr(interrupt, "reason", "interrupted")
        if store.get_search(search_id).status is not SearchStatus.CANCELLED:  # stays cancelled
            store.set_status(search_id, SearchStatus.INTERRUPTED, error=reason)
        store.add_event(search_id, "interrupted", f"{reason} at step {state.step}")
        raise
    except (OwnershipLost, StoreUnavailable):
        raise  # another process owns the search, or the database is gone: write nothing
    except IncompatibleState as error:  # nothing is wrong with the search: it stays resumable
        store.set_status(search_id, SearchStatus.INTERRUPTED, error=str(error))
        store.add_event(search_id, "interrupted", str(error))
        raise
    except Exception as error:
        store.set_status(search_id, SearchStatus.FAILED, error=f"{type(error).__name__}: {error}")
        store.add_event(search_id, "failed", str(error))
        raise
    finally:
        if evaluator is not None:
            evaluator.close()
    loop.checkpoint(store, search_id, strategy, evaluator, state)
    store.add_event(search_id, "finished", f"{state.architectures} architectures",
                    {"architectures": state.architectures})
    store.set_status(search_id, SearchStatus.FINISHED)




class NoCandidateScored(RuntimeError):
    """Every candidate of a search failed: there is nothing to rank or export."""


def _check_some_scored(store: Store, search_id: str, state: LoopState) -> None:
    """`NoCandidateScored` (the search then ends failed) when the search evaluated candidates
    and not one has a reward, naming the first failure's reason."""
    if state.architectures == 0 or store.get_search(search_id).best_reward is not None:
        return
    failed = store.architectures(search_id, state=ArchitectureState.FAIL, order="step", limit=1)
    first = (failed[0].error or "").strip().splitlines() if failed else []
    reason = f"; the first: {first[0]}" if first else ""
    raise NoCandidateScored(f"all {state.architectures} candidates failed, none has a "
                            f"reward{reason}")


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
    told_genotypes, told_rewards, abandoned = [], [], []
    for architecture_id, genotype, evaluation in zip(ids, genotypes, evaluations, strict=True):
        loop.finish(store, architecture_id, evaluation)
        if evaluation.reward is not None:
            told_genotypes.append(genotype)
            told_rewards.append(evaluation.reward)
        else:
            abandoned.append(genotype)
    if told_genotypes:
        strategy.tell(told_genotypes, told_rewards)
    if abandoned:
        strategy.abandon(abandoned)
    state.step += 1
    state.architectures += len(genotypes)
    logger.info("step %d: %d architectures", state.step, state.architectures)


def _record_derived(store: Store, search_id: str, evaluator: Evaluator, strategy: Strategy,
                    state: LoopState) -> None:
    """Record the evaluator's final candidates (ENAS's derived cells) with role 'derived'."""
    if store.count_architectures(search_id, role=ArchitectureRole.DERIVED):
        return  # recorded before an interruption: keep them
    derived = evaluator.derive(strategy)
    if not derived:
        return
    genotypes = [genotype for genotype, _ in derived]
    ids = store.add_architectures(search_id, state.step, genotypes, evaluator.name,
                                  role=ArchitectureRole.DERIVED)
    for architecture_id, (_, evaluation) in zip(ids, derived, strict=True):
        loop.finish(store, architecture_id, evaluation)
    store.add_event(search_id, "derived", f"{len(ids)} derived architectures",
                    {"rewards": [evaluation.reward for _, evaluation in derived]})



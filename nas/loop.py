"""What both search loops share: the loop's state and progress report, the budget, the
cancellation check, recording an evaluation, and checkpoints (write and restore).

`nas.search` (one step at a time) and `nas.concurrent_search` (candidates in flight) import
these; neither reaches into the other's private helpers.
"""

from __future__ import annotations

import io
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from nas.config import SearchConfig
from nas.evaluators import Evaluation, Evaluator
from nas.states import SearchStatus
from nas.store import OwnershipLost, Store
from nas.strategies import Strategy


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


def deadline(config: SearchConfig, started: float, state: LoopState) -> float | None:
    """When the evaluator's work must end: the time budget less the final checkpoint."""
    if config.budget.seconds is None:
        return None
    return started + config.budget.seconds - state.checkpoint_seconds


def budget_spent(config: SearchConfig, state: LoopState, reserved_seconds: float = 0.0) -> bool:
    """Whether the loop must stop asking: the architectures are spent, or the time budget less
    what the evaluator reserves for its end (ENAS's derivation)."""
    budget = config.budget
    if budget.architectures is not None and state.architectures >= budget.architectures:
        return True
    return (budget.seconds is not None
            and state.elapsed_seconds + reserved_seconds >= budget.seconds)


def cancelled(store: Store, search_id: str) -> bool:
    """Whether the search was cancelled; `OwnershipLost` when the fenced `store`'s lease is
    not current any more (checked here too, so a run that lost its search stops before it
    spends a step's work that no write could record)."""
    record = store.get_search(search_id)
    lease = store.lease
    if lease is not None and (record.owner, record.owner_epoch) != (lease.owner, lease.epoch):
        raise OwnershipLost(f"lost ownership of search {search_id} (epoch {lease.epoch}; now "
                            f"{record.owner or 'released'}): this process stops without writing")
    return record.status is SearchStatus.CANCELLED


def finish(store: Store, architecture_id: int, evaluation: Evaluation) -> None:
    store.finish_architecture(
        architecture_id, state=evaluation.state, reward=evaluation.reward,
        accuracy=evaluation.accuracy, params=evaluation.params, flops=evaluation.flops,
        latency_ms=evaluation.latency_ms, train_seconds=evaluation.train_seconds,
        metrics=evaluation.metrics, error=evaluation.error, weights_path=evaluation.weights_path,
    )


def checkpoint(store: Store, search_id: str, strategy: Strategy, evaluator: Evaluator,
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


def restore(store: Store, search_id: str, strategy: Strategy, evaluator: Evaluator
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

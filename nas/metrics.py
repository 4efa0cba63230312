"""`Metrics`: what an evaluator measured of a candidate beyond the scored columns.

The store keeps it as JSON; the fields below are typed, and an evaluator's own numbers (the
training loop's summary, a Tune result) ride along as extra fields. Where the trained weights
are and whether a derived cell was retrained are not metrics: they are the architecture's
`weights_path` and `retrained` columns (see `nas.store.models`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from nas.ranking import Agreement
from nas.states import ArchitectureState


class Retrained(BaseModel):
    """A derived cell trained from scratch (ENAS's `retrain_top`), as a standalone candidate."""

    model_config = ConfigDict(frozen=True)

    state: ArchitectureState
    accuracy: float | None = None
    params: int | None = None
    flops: int | None = None
    train_seconds: float | None = None
    error: str | None = None


class Metrics(BaseModel):
    """An architecture's metrics; `to_json()` is what the store and the API hold."""

    model_config = ConfigDict(frozen=True, extra="allow", allow_inf_nan=True)

    history: list[dict[str, Any]] | None = None
    """Per-epoch numbers of its training (`nas.train.EpochMetrics`)."""
    traceback: str | None = None
    """Where a failed candidate failed."""
    supernet_epochs: int | None = None
    """ENAS: supernet epochs trained when it was scored."""
    scored_on: int | None = None
    """ENAS: validation examples it was scored on."""
    train_step_ms: float | None = None
    """Milliseconds of one training step at the search's batch size (`nas.latency`); the
    forward latency at batch 1 is the `latency_ms` column."""
    train_step_batch: int | None = None
    """The batch size of that training step."""
    latency_device: str | None = None
    """The device both latencies were measured on."""
    derived_from: int | None = None
    """ENAS, derived cells: candidates derivation scored."""
    retrained: Retrained | None = None
    """ENAS, derived cells: the outcome of training it from scratch."""
    batch_loss: float | None = None
    """ENAS, candidates scored with `evaluator.score_by: loss`: mean cross-entropy on the
    scoring batches under the shared weights (the reward is the objective of exp(-batch_loss))."""
    whole_split_loss: float | None = None
    """ENAS, derived cells: mean cross-entropy on the whole validation split under the shared
    weights (`evaluator.derive_by: loss` ranks derivation by it)."""
    ranking: Agreement | None = None
    """ENAS, derived cells: Kendall's tau between derivation's candidates' scores as the search
    gives them (`evaluator.score_by`, `score_on`, `score_batches`) and their whole-split scores
    (derivation's: `evaluator.derive_by`) (`nas.ranking`)."""
    worker: dict[str, Any] | None = None
    """Ray: where it trained (node, pid, device, threads)."""
    worker_failures: int | None = None
    """Ray: how often its worker died before it ended."""
    network: dict[str, Any] | None = None
    """Transferred: the network settings it was trained with."""
    zoo: str | None = None
    """Role `zoo`: the reference network's name (e.g. `resnet20`)."""

    def to_json(self) -> dict[str, Any]:
        """The fields that were given (None ones included), as JSON values."""
        return self.model_dump(mode="json", exclude_unset=True)

    def with_values(self, **values: Any) -> Metrics:
        """A copy with `values` added or replaced."""
        return Metrics.model_validate(self.to_json() | values)

    def numbers(self) -> dict[str, int | float | str | bool]:
        """The plain (scalar) values, for a table of its metrics."""
        return {key: value for key, value in self.to_json().items()
                if isinstance(value, int | float | str | bool)}

    @classmethod
    def of(cls, value: Metrics | dict[str, Any] | None) -> Metrics:
        """`value` as `Metrics` (a dict is validated; None is empty)."""
        if isinstance(value, Metrics):
            return value
        return cls.model_validate(value or {})

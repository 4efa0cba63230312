"""What the store hands out: frozen, session-free copies of its rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nas.metrics import Metrics
from searchspace.genotype import Genotype

from .models import ArchitectureRole, ArchitectureState, SearchStatus


@dataclass(frozen=True)
class SearchRecord:
    id: str
    name: str
    status: SearchStatus
    config: dict[str, Any]
    seed: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    owner: str | None
    """The process running the search now (None: nobody; see `Store.claim_search`)."""
    owner_epoch: int
    heartbeat_at: datetime | None
    resume_attempts: int
    best_reward: float | None
    """The highest reward of the search's COMPLETE architectures (any role), if any."""

    def heartbeat_age(self, now: datetime | None = None) -> float | None:
        """Seconds since the owner's last heartbeat (None: no heartbeat)."""
        if self.heartbeat_at is None:
            return None
        return ((now or datetime.now(UTC)) - self.heartbeat_at).total_seconds()

    def is_stale(self, stale_after: float, now: datetime | None = None) -> bool:
        """Running, but its owner is gone: no owner, or no heartbeat for `stale_after` s."""
        if self.status is not SearchStatus.RUNNING:
            return False
        age = self.heartbeat_age(now)
        return self.owner is None or age is None or age >= stale_after


@dataclass(frozen=True)
class Lease:
    """Ownership of a search: the owner's id and the epoch (fencing token) of its claim.

    A store opened with `Store.fenced(lease)` refuses every write once the search has another
    epoch (another process took it over, or the lease was released)."""

    search_id: str
    owner: str
    epoch: int


@dataclass(frozen=True)
class ArchitectureRecord:
    id: int
    search_id: str
    step: int
    genotype_json: str
    genotype_id: str
    state: ArchitectureState
    role: ArchitectureRole
    parent_id: int | None
    evaluator: str
    reward: float | None
    accuracy: float | None
    params: int | None
    flops: int | None
    latency_ms: float | None
    train_seconds: float | None
    metrics: Metrics | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    weights_path: str | None = None
    """Its trained weights, when they were kept."""
    retrained: bool = False
    """A derived cell also trained from scratch (its outcome: `metrics.retrained`)."""
    op_set_version: int = 1
    """The op set it was found with (`searchspace.op_set.OP_SET_VERSION`)."""

    def __post_init__(self) -> None:  # the row holds the metrics as JSON
        if isinstance(self.metrics, dict):
            object.__setattr__(self, "metrics", Metrics.of(self.metrics))

    @property
    def genotype(self) -> Genotype:
        return Genotype.from_json(self.genotype_json)


@dataclass(frozen=True)
class EventRecord:
    id: int
    search_id: str
    created_at: datetime
    kind: str
    message: str
    data: dict[str, Any] | None


@dataclass(frozen=True)
class CheckpointRecord:
    id: int
    search_id: str
    step: int
    created_at: datetime
    payload: bytes = field(repr=False)  # can be megabytes

"""What the store hands out: frozen, session-free copies of its rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from searchspace.genotype import Genotype

from .models import ArchitectureState, SearchStatus


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
    best_reward: float | None
    """The highest reward of the search's COMPLETE architectures (any role), if any."""


@dataclass(frozen=True)
class ArchitectureRecord:
    id: int
    search_id: str
    step: int
    genotype_json: str
    genotype_id: str
    state: ArchitectureState
    role: str
    parent_id: int | None
    evaluator: str
    reward: float | None
    accuracy: float | None
    params: int | None
    flops: int | None
    latency_ms: float | None
    train_seconds: float | None
    metrics: dict[str, Any] | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None

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

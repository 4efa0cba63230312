"""What the API answers: pydantic models built from the service layer's records."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from nas.data.archive import ImportedDataset
from nas.service.searches import SearchSummary
from nas.states import ArchitectureRole, ArchitectureState, SearchStatus
from nas.store import ArchitectureRecord


class Budget(BaseModel):
    architectures: int | None
    seconds: float | None


class SearchOut(BaseModel):
    id: str
    name: str
    status: SearchStatus
    strategy: str | None
    evaluator: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    best_reward: float | None
    architectures: int = Field(description="candidates recorded (derived ones not counted)")
    budget: Budget
    progress: float | None = Field(description="share of the architecture budget recorded")
    owner: str | None = Field(description="the process running it")
    heartbeat_at: datetime | None
    stale: bool = Field(description="running, but its owner stopped beating: it died")

    @classmethod
    def of(cls, item: SearchSummary) -> SearchOut:
        record = item.search
        return cls(
            id=record.id, name=record.name, status=record.status,
            strategy=(record.config.get("strategy") or {}).get("name"),
            evaluator=(record.config.get("evaluator") or {}).get("name"),
            created_at=record.created_at, started_at=record.started_at,
            finished_at=record.finished_at, error=record.error, best_reward=record.best_reward,
            architectures=item.architectures,
            budget=Budget(architectures=item.budget_architectures, seconds=item.budget_seconds),
            progress=item.progress, owner=record.owner, heartbeat_at=record.heartbeat_at,
            stale=item.stale)


class SearchDetail(SearchOut):
    config: dict[str, Any]


class SearchPage(BaseModel):
    items: list[SearchOut]
    next_cursor: str | None


class ArchitectureOut(BaseModel):
    id: int
    search_id: str
    step: int
    state: ArchitectureState
    role: ArchitectureRole
    evaluator: str
    genotype_id: str
    genotype: dict[str, Any]
    reward: float | None
    accuracy: float | None
    params: int | None
    flops: int | None = Field(description="multiply-adds of one forward pass")
    latency_ms: float | None = Field(description="ms of one forward pass at batch 1")
    train_seconds: float | None
    op_set_version: int = Field(description="the op set it was found with; exports need the "
                                "release's own")
    error: str | None
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, record: ArchitectureRecord) -> ArchitectureOut:
        return cls(
            id=record.id, search_id=record.search_id, step=record.step, state=record.state,
            role=record.role, evaluator=record.evaluator, genotype_id=record.genotype_id,
            genotype=json.loads(record.genotype_json),  # as stored: the canonical to_json()
            reward=record.reward, accuracy=record.accuracy,
            params=record.params, flops=record.flops, latency_ms=record.latency_ms,
            train_seconds=record.train_seconds, op_set_version=record.op_set_version,
            error=record.error,
            created_at=record.created_at, finished_at=record.finished_at)


class ArchitectureDetail(ArchitectureOut):
    history: list[dict[str, Any]] = Field(description="per-epoch metrics of its training")
    metrics: dict[str, Any]


class ArchitecturePage(BaseModel):
    items: list[ArchitectureOut]
    next_cursor: str | None


class ArchitectureLogs(BaseModel):
    id: int
    state: ArchitectureState
    error: str | None
    worker: dict[str, Any] | None = Field(description="where it ran: node, pid, device")
    log: list[str]


class DatasetOut(BaseModel):
    id: str
    classes: list[str]
    images: int

    @classmethod
    def of(cls, imported: ImportedDataset) -> DatasetOut:
        return cls(id=imported.id, classes=list(imported.classes), images=imported.images)


class SessionIn(BaseModel):
    token: str = Field(max_length=4096)


class SessionOut(BaseModel):
    csrf_token: str


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)


class ErrorOut(BaseModel):
    """Every error the API answers (never a traceback)."""

    detail: str | list[dict[str, Any]] = Field(
        description="why, in one line; for a request FastAPI could not validate, its list of "
        "the fields at fault")


ERROR_DESCRIPTIONS = {
    400: "the body cannot be parsed (not UTF-8 JSON, broken multipart)",
    401: "missing or wrong API token",
    403: "a write made with the dashboard's session cookie lacks its CSRF token",
    404: "no such resource",
    409: "the request contradicts the current state",
    413: "the request body is larger than the server accepts",
    422: "invalid input: the detail names the field and the reason",
}


def errors(*codes: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses, each an `ErrorOut`; a description can be
    given by keyword (`not_found="unknown search id"` for 404)."""
    named = {404: "not_found", 409: "conflict"}
    return {code: {"model": ErrorOut,
                   "description": descriptions.get(named.get(code, ""), ERROR_DESCRIPTIONS[code])}
            for code in codes}

"""Searches as a user handles them: launch, list, get, cancel, resume, delete.

Plain functions over a `Store`; they raise `nas.service.errors` user errors. Launching only
queues the search (validated, its dataset checked): a runner picks it up (`nas.service.runs`).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nas.config import SearchConfig
from nas.ownership import OwnershipSettings
from nas.paths import weights_dir
from nas.search import create_search
from nas.states import ACTIVE_STATUSES, RESUMABLE_STATUSES, ArchitectureRole
from nas.store import SearchRecord, SearchStatus, Store
from nas.store.pages import Page

from .errors import Conflict, InvalidInput


@dataclass(frozen=True)
class SearchSummary:
    """A search with its progress: what `GET /searches/{id}` and `nas show` report."""

    search: SearchRecord
    architectures: int
    budget_architectures: int | None
    budget_seconds: float | None
    stale: bool
    """Running, but its owner's heartbeat is older than `NAS_HEARTBEAT_STALE_SECONDS`."""

    @property
    def progress(self) -> float | None:
        """Share of the architecture budget recorded (None without one)."""
        if not self.budget_architectures:
            return None
        return min(1.0, self.architectures / self.budget_architectures)


def launch(store: Store, config: SearchConfig,
           allowed_roots: Sequence[Path] | None = None) -> SearchRecord:
    """Queue a search for `config`. With `allowed_roots` (HTTP callers), a dataset path must
    lie inside one of them."""
    if allowed_roots is not None and config.dataset.path is not None:
        confine(Path(config.dataset.path), allowed_roots)
    return create_search(store, config)


def confine(path: Path, roots: Sequence[Path]) -> None:
    """`InvalidInput` unless `path` (links resolved) lies inside one of `roots`."""
    resolved = path.resolve()
    if not any(resolved.is_relative_to(root.resolve()) for root in roots):
        raise InvalidInput(f"dataset.path {str(path)[:200]!r} is outside the folders this "
                           f"server reads datasets from; upload the dataset "
                           f"(POST /api/v1/datasets) and name it by dataset.id")


def summary(store: Store, search_id: str) -> SearchSummary:
    record = store.get_search(search_id)
    budget = record.config.get("budget") or {}
    stale = record.is_stale(OwnershipSettings.from_env().stale_seconds)
    candidates = store.count_architectures(search_id, role=ArchitectureRole.CANDIDATE)
    return SearchSummary(record, candidates, budget.get("architectures"), budget.get("seconds"),
                         stale)


def page(store: Store, *, status: SearchStatus | None = None, cursor: str | None = None,
         limit: int = 50) -> Page[SearchSummary]:
    found = store.page_searches(status=status, cursor=cursor, limit=limit)
    return Page([summary(store, record.id) for record in found.items], found.next_cursor)


def cancel(store: Store, search_id: str) -> SearchRecord:
    """Ask a queued or running search to stop; its runner stops at the next step."""
    record = store.get_search(search_id)
    if record.status not in ACTIVE_STATUSES:
        raise Conflict(f"search {search_id} is {record.status}; only a queued or running "
                       f"search can be cancelled")
    return store.set_status(search_id, SearchStatus.CANCELLED, error="cancelled by the user",
                            only_from=ACTIVE_STATUSES, event=("cancel", "cancel requested"))


def resume(store: Store, search_id: str) -> SearchRecord:
    """Queue a failed, cancelled or interrupted search again; a runner continues it from its
    last checkpoint."""
    record = store.get_search(search_id)
    if record.status not in RESUMABLE_STATUSES:
        raise Conflict(f"search {search_id} is {record.status}; only a failed, cancelled or "
                       f"interrupted search can be resumed")
    return store.set_status(search_id, SearchStatus.QUEUED, only_from=RESUMABLE_STATUSES,
                            event=("resume", "resume requested"))


def delete(store: Store, search_id: str) -> None:
    """Delete an ended search with its rows and files (409 while queued or running)."""
    record = store.get_search(search_id)
    if record.status in ACTIVE_STATUSES:
        raise Conflict(f"search {search_id} is {record.status}; cancel it first")
    age = record.heartbeat_age()
    if record.owner is not None and age is not None and (
            age < OwnershipSettings.from_env().stale_seconds):  # cancelled, not stopped yet
        raise Conflict(f"search {search_id} is {record.status}, but its run is still "
                       f"stopping (it stops at its next step); delete it once it has")
    store.delete_search(search_id)
    shutil.rmtree(weights_dir() / search_id, ignore_errors=True)


def config_of(record: SearchRecord) -> SearchConfig:
    return SearchConfig.model_validate(record.config)

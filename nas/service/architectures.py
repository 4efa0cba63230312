"""A search's architectures: pages, one architecture, the best, a candidate's log."""

from __future__ import annotations

from nas.store import ArchitectureRecord, ArchitectureRole, ArchitectureState, Store
from nas.store.pages import ArchitectureSort, Page

from .errors import NotFound


def page(store: Store, search_id: str, *, sort: ArchitectureSort = "reward",
         descending: bool | None = None, state: ArchitectureState | None = None,
         role: ArchitectureRole | None = None, cursor: str | None = None, limit: int = 100
         ) -> Page[ArchitectureRecord]:
    return store.page_architectures(search_id, sort=sort, descending=descending, state=state,
                                    role=role, cursor=cursor, limit=limit)


TOP_LIMIT = 1000  # the most `GET /api/v1/searches/{id}/top` answers: the ranks a client sees


def top(store: Store, search_id: str, limit: int) -> list[ArchitectureRecord]:
    """The best scored architectures by the store's ranking (ENAS: the derived ones)."""
    return store.ranked_architectures(search_id, limit=limit)


def best(store: Store, search_id: str) -> ArchitectureRecord:
    """The best architecture by the store's ranking."""
    ranked = top(store, search_id, 1)
    if not ranked:
        raise NotFound(f"search {search_id} has no scored architecture yet")
    return ranked[0]


def history(record: ArchitectureRecord) -> list[dict]:
    return list((record.metrics.history if record.metrics else None) or [])


def log_lines(record: ArchitectureRecord) -> list[str]:
    """What the candidate's training said: its epochs, then its error and traceback."""
    lines = [f"epoch {epoch.get('epoch')}: train loss {epoch.get('train_loss', 0):.4f}, "
             f"val accuracy {epoch.get('val_accuracy', 0):.4f}, "
             f"{epoch.get('seconds', 0):.1f} s" for epoch in history(record)]
    if record.error:
        lines.append(f"error: {record.error}")
    lines += str((record.metrics.traceback if record.metrics else None) or "").splitlines()
    return lines

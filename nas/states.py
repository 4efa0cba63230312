"""The typed vocabulary shared by the engine, the store and the faces.

Every enum is a `StrEnum`: its members compare equal to, and are stored and served as, the
plain strings the database, the API and the dashboard have always used.
"""

from __future__ import annotations

import enum


class SearchStatus(enum.StrEnum):
    """Lifecycle of a search: queued -> running -> finished | failed | cancelled | interrupted
    (stopped by a signal; resumable like failed and cancelled)."""

    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


class ArchitectureState(enum.StrEnum):
    """Lifecycle of one sampled architecture, as Optuna's `TrialState`."""

    WAITING = "WAITING"
    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    PRUNED = "PRUNED"
    FAIL = "FAIL"


class ArchitectureRole(enum.StrEnum):
    """Why an architecture is in a search.

    `candidate`: asked by the strategy and scored by the evaluator; `derived`: the evaluator's
    final pick (ENAS's cells re-scored on the whole validation split); `transferred`: a cell
    trained on another dataset (`nas transfer`); `zoo`: a hand-designed reference network
    trained for comparison."""

    CANDIDATE = "candidate"
    DERIVED = "derived"
    TRANSFERRED = "transferred"
    ZOO = "zoo"


ENDED_STATUSES = frozenset({SearchStatus.FINISHED, SearchStatus.FAILED, SearchStatus.CANCELLED,
                            SearchStatus.INTERRUPTED})
"""Searches no process runs (any more)."""
RESUMABLE_STATUSES = frozenset({SearchStatus.FAILED, SearchStatus.CANCELLED,
                                SearchStatus.INTERRUPTED})
"""Searches `resume` may queue again."""
ACTIVE_STATUSES = frozenset({SearchStatus.QUEUED, SearchStatus.RUNNING})
"""Searches a user may cancel (and may not delete); the only ones a run the server launched
may claim (a search cancelled before its run started stays cancelled)."""

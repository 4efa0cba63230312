"""`Store`: searches, architectures, events and checkpoints in any SQLAlchemy database.

A SQLite file by default (`$NAS_DATABASE_URL`, else `$NAS_HOME/nas.db`), PostgreSQL in compose.
Opening a store migrates its database to the newest schema. Every public method is one short
transaction and returns frozen records, so several processes can share one database.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import fields
from typing import Any, Literal, TypeVar

from sqlalchemy import ColumnElement, Select, delete, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from searchspace.genotype import Genotype

from . import migrations
from .engine import WRITE_OPTION, create_store_engine, default_url
from .models import Architecture, ArchitectureState, Checkpoint, Event, Search, SearchStatus, utcnow
from .pages import PageQueries
from .records import ArchitectureRecord, CheckpointRecord, EventRecord, SearchRecord

SEARCH_TRANSITIONS: dict[SearchStatus, frozenset[SearchStatus]] = {
    SearchStatus.QUEUED: frozenset(
        {SearchStatus.RUNNING, SearchStatus.CANCELLED, SearchStatus.FAILED}
    ),
    SearchStatus.RUNNING: frozenset(
        {SearchStatus.FINISHED, SearchStatus.FAILED, SearchStatus.CANCELLED, SearchStatus.QUEUED}
    ),
    SearchStatus.FAILED: frozenset({SearchStatus.QUEUED, SearchStatus.RUNNING}),
    SearchStatus.CANCELLED: frozenset({SearchStatus.QUEUED, SearchStatus.RUNNING}),
    SearchStatus.FINISHED: frozenset(),
}
ENDED_STATUSES = frozenset({SearchStatus.FINISHED, SearchStatus.FAILED, SearchStatus.CANCELLED})
FINAL_STATES = frozenset(
    {ArchitectureState.COMPLETE, ArchitectureState.PRUNED, ArchitectureState.FAIL}
)
OPEN_STATES = frozenset({ArchitectureState.WAITING, ArchitectureState.RUNNING})


class UnknownSearch(LookupError):
    """No search has this id."""


class UnknownArchitecture(LookupError):
    """No architecture has this id."""


class InvalidTransition(ValueError):
    """A status or state change that the lifecycle does not allow."""


T = TypeVar("T")


def _record(record_type: type[T], row: object, **values: Any) -> T:
    """`record_type` filled from the attributes of `row` of the same names, then `values`."""
    names = [field.name for field in fields(record_type) if field.name not in values]
    return record_type(**{name: getattr(row, name) for name in names}, **values)


def _json(value: Any) -> Any:
    """`value` as the database will return it (and a TypeError now if it is not JSON)."""
    return None if value is None else json.loads(json.dumps(value))


def _best_reward() -> ColumnElement[float | None]:
    return (
        select(func.max(Architecture.reward))
        .where(
            Architecture.search_id == Search.id,
            Architecture.state == ArchitectureState.COMPLETE,
        )
        .correlate(Search)
        .scalar_subquery()
    )


class Store(PageQueries):
    """The storage interface of the service; see the module docstring."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_url()
        self._engine = create_store_engine(self.url)
        self._writer = self._engine.execution_options(**{WRITE_OPTION: True})
        migrations.upgrade(self._writer)

    def __repr__(self) -> str:
        return f"Store({make_url(self.url).render_as_string(hide_password=True)!r})"

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _session(self, write: bool = False) -> Iterator[Session]:
        with Session(self._writer if write else self._engine) as session, session.begin():
            yield session

    # searches

    def create_search(self, name: str, config: dict[str, Any], seed: int) -> SearchRecord:
        """A new search in status `queued`."""
        search = Search(
            id=uuid.uuid4().hex[:12], name=name, status=SearchStatus.QUEUED,
            config=_json(config), seed=seed,
        )
        with self._session(write=True) as session:
            session.add(search)
            session.flush()
            return _record(SearchRecord, search, best_reward=None)

    def get_search(self, search_id: str) -> SearchRecord:
        with self._session() as session:
            return self._search_record(session, search_id)

    def list_searches(self, limit: int | None = None) -> list[SearchRecord]:
        """Searches, newest first."""
        query = (
            select(Search, _best_reward())
            .order_by(Search.created_at.desc(), Search.id.desc())
            .limit(limit)
        )
        with self._session() as session:
            return [
                _record(SearchRecord, search, best_reward=best)
                for search, best in session.execute(query)
            ]

    def latest_search(self, status: SearchStatus | None = None) -> SearchRecord | None:
        """The newest search (in `status`, if given), or None."""
        query = select(Search, _best_reward()).order_by(
            Search.created_at.desc(), Search.id.desc()
        )
        if status is not None:
            query = query.where(Search.status == SearchStatus(status))
        with self._session() as session:
            row = session.execute(query.limit(1)).first()
            return None if row is None else _record(SearchRecord, row[0], best_reward=row[1])

    def set_status(
        self, search_id: str, status: SearchStatus, error: str | None = None
    ) -> SearchRecord:
        """Move a search along its lifecycle (see `SEARCH_TRANSITIONS`); `error` replaces the
        previous one. Entering `running` the first time sets `started_at`; ending sets
        `finished_at`, and going back to queued/running clears it."""
        status = SearchStatus(status)
        with self._session(write=True) as session:
            search = self._search(session, search_id, for_update=True)
            allowed = SEARCH_TRANSITIONS[search.status]
            if status not in allowed:
                options = ", ".join(sorted(allowed)) or f"none: {search.status} is final"
                raise InvalidTransition(
                    f"search {search_id!r} cannot go from {search.status} to {status} "
                    f"(allowed: {options})"
                )
            now = utcnow()
            if status is SearchStatus.RUNNING and search.started_at is None:
                search.started_at = now
            search.finished_at = now if status in ENDED_STATUSES else None
            search.status = status
            search.error = error
            session.flush()
            return self._search_record(session, search_id)

    def delete_search(self, search_id: str) -> None:
        """Delete a search with its architectures, events and checkpoints."""
        with self._session(write=True) as session:
            result = session.execute(delete(Search).where(Search.id == search_id))
            if result.rowcount == 0:
                raise UnknownSearch(f"unknown search id {search_id!r}")

    # architectures

    def add_architectures(
        self,
        search_id: str,
        step: int,
        genotypes: Sequence[Genotype],
        evaluator: str,
        role: str = "candidate",
        parent_id: int | None = None,
    ) -> list[int]:
        """Record `genotypes` sampled at `step`, all WAITING; their ids, in order."""
        with self._session(write=True) as session:
            self._search(session, search_id)
            if parent_id is not None:
                self._architecture(session, parent_id)
            rows = [
                Architecture(
                    search_id=search_id, step=step, genotype_json=genotype.to_json(),
                    genotype_id=genotype.id, state=ArchitectureState.WAITING, role=role,
                    parent_id=parent_id, evaluator=evaluator,
                )
                for genotype in genotypes
            ]
            session.add_all(rows)
            session.flush()
            return [row.id for row in rows]

    def start_architecture(self, architecture_id: int) -> ArchitectureRecord:
        """WAITING -> RUNNING."""
        with self._session(write=True) as session:
            row = self._architecture(session, architecture_id, for_update=True)
            if row.state is not ArchitectureState.WAITING:
                raise InvalidTransition(
                    f"architecture {architecture_id} is {row.state}; only WAITING ones can start"
                )
            row.state = ArchitectureState.RUNNING
            session.flush()
            return _record(ArchitectureRecord, row)

    def finish_architecture(
        self,
        architecture_id: int,
        *,
        state: ArchitectureState,
        reward: float | None = None,
        accuracy: float | None = None,
        params: int | None = None,
        flops: int | None = None,
        latency_ms: float | None = None,
        train_seconds: float | None = None,
        metrics: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> ArchitectureRecord:
        """WAITING/RUNNING -> COMPLETE (needs a reward), PRUNED, or FAIL (needs an error)."""
        state = ArchitectureState(state)
        if state not in FINAL_STATES:
            raise ValueError(f"cannot finish in state {state}; use COMPLETE, PRUNED or FAIL")
        if state is ArchitectureState.FAIL and not error:
            raise ValueError(f"architecture {architecture_id}: FAIL needs an error message")
        if state is ArchitectureState.COMPLETE and reward is None:
            raise ValueError(f"architecture {architecture_id}: COMPLETE needs a reward")
        with self._session(write=True) as session:
            row = self._architecture(session, architecture_id, for_update=True)
            if row.state not in OPEN_STATES:
                raise InvalidTransition(
                    f"architecture {architecture_id} is already {row.state}; cannot make it {state}"
                )
            row.state = state
            row.reward, row.accuracy, row.params, row.flops = reward, accuracy, params, flops
            row.latency_ms, row.train_seconds = latency_ms, train_seconds
            row.metrics, row.error, row.finished_at = _json(metrics), error, utcnow()
            session.flush()
            return _record(ArchitectureRecord, row)

    def get_architecture(self, architecture_id: int) -> ArchitectureRecord:
        with self._session() as session:
            return _record(ArchitectureRecord, self._architecture(session, architecture_id))

    def architectures(
        self,
        search_id: str,
        *,
        state: ArchitectureState | None = None,
        order: Literal["reward", "step"] = "reward",
        limit: int | None = None,
        role: str | None = None,
    ) -> list[ArchitectureRecord]:
        """A search's architectures: best reward first (no reward last), or by step; ties by id."""
        if order == "reward":
            ordering = (Architecture.reward.desc().nulls_last(), Architecture.id)
        elif order == "step":
            ordering = (Architecture.step, Architecture.id)
        else:
            raise ValueError(f"unknown order {order!r}; use 'reward' or 'step'")
        query = self._architecture_query(search_id, state, role).order_by(*ordering).limit(limit)
        with self._session() as session:
            self._search(session, search_id)
            return [_record(ArchitectureRecord, row) for row in session.scalars(query)]

    def best_architecture(
        self, search_id: str, rank: int = 1, role: str | None = None
    ) -> ArchitectureRecord:
        """The COMPLETE architecture with the `rank`-th highest reward (1 = the best)."""
        query = self._architecture_query(search_id, ArchitectureState.COMPLETE, role)
        with self._session() as session:
            self._search(session, search_id)
            best = session.scalars(
                query.order_by(Architecture.reward.desc(), Architecture.id)
                .offset(max(rank - 1, 0))
                .limit(1)
            ).first()
            if rank < 1 or best is None:
                total = session.scalar(select(func.count()).select_from(query.subquery()))
                with_role = f" with role {role!r}" if role is not None else ""
                raise LookupError(
                    f"rank {rank} is out of range: search {search_id!r} has {total} "
                    f"COMPLETE architecture(s){with_role}, ranked from 1"
                )
            return _record(ArchitectureRecord, best)

    def count_architectures(
        self, search_id: str, state: ArchitectureState | None = None, role: str | None = None
    ) -> int:
        query = self._architecture_query(search_id, state, role)
        with self._session() as session:
            self._search(session, search_id)
            return session.scalar(select(func.count()).select_from(query.subquery())) or 0

    def delete_architectures_after(self, search_id: str, step: int) -> int:
        """Delete a search's architectures with step > `step` (resuming from a checkpoint taken
        at `step` records them again); how many were deleted."""
        with self._session(write=True) as session:
            self._search(session, search_id)
            result = session.execute(
                delete(Architecture).where(
                    Architecture.search_id == search_id, Architecture.step > step
                )
            )
            return result.rowcount

    # events

    def add_event(
        self, search_id: str, kind: str, message: str, data: dict[str, Any] | None = None
    ) -> int:
        """Append an event to a search's log; its id."""
        with self._session(write=True) as session:
            self._search(session, search_id)
            row = Event(search_id=search_id, kind=kind, message=message, data=_json(data))
            session.add(row)
            session.flush()
            return row.id

    def events(
        self, search_id: str, after_id: int = 0, limit: int | None = None
    ) -> list[EventRecord]:
        """A search's events with id > `after_id`, oldest first."""
        query = (
            select(Event)
            .where(Event.search_id == search_id, Event.id > after_id)
            .order_by(Event.id)
            .limit(limit)
        )
        with self._session() as session:
            self._search(session, search_id)
            return [_record(EventRecord, row) for row in session.scalars(query)]

    # checkpoints

    def save_checkpoint(self, search_id: str, step: int, payload: bytes, keep: int = 2) -> int:
        """Save a checkpoint taken at `step`, keeping only the newest `keep`; its id."""
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        with self._session(write=True) as session:
            self._search(session, search_id)
            row = Checkpoint(search_id=search_id, step=step, payload=payload)
            session.add(row)
            session.flush()
            older = session.scalars(
                select(Checkpoint.id)
                .where(Checkpoint.search_id == search_id)
                .order_by(Checkpoint.id.desc())
                .offset(keep)
            ).all()
            if older:
                session.execute(delete(Checkpoint).where(Checkpoint.id.in_(older)))
            return row.id

    def latest_checkpoint(self, search_id: str) -> CheckpointRecord | None:
        """The checkpoint saved last, or None."""
        query = (
            select(Checkpoint)
            .where(Checkpoint.search_id == search_id)
            .order_by(Checkpoint.id.desc())
            .limit(1)
        )
        with self._session() as session:
            self._search(session, search_id)
            row = session.scalars(query).first()
            return None if row is None else _record(CheckpointRecord, row)

    # helpers (inside a session)

    def _search(self, session: Session, search_id: str, for_update: bool = False) -> Search:
        search = session.get(Search, search_id, with_for_update=for_update)
        if search is None:
            raise UnknownSearch(f"unknown search id {search_id!r}")
        return search

    def _search_record(self, session: Session, search_id: str) -> SearchRecord:
        row = session.execute(
            select(Search, _best_reward()).where(Search.id == search_id)
        ).first()
        if row is None:
            raise UnknownSearch(f"unknown search id {search_id!r}")
        return _record(SearchRecord, row[0], best_reward=row[1])

    def _architecture(
        self, session: Session, architecture_id: int, for_update: bool = False
    ) -> Architecture:
        row = session.get(Architecture, architecture_id, with_for_update=for_update)
        if row is None:
            raise UnknownArchitecture(f"unknown architecture id {architecture_id}")
        return row

    @staticmethod
    def _architecture_query(
        search_id: str, state: ArchitectureState | None, role: str | None
    ) -> Select[Architecture]:
        query = select(Architecture).where(Architecture.search_id == search_id)
        if state is not None:
            query = query.where(Architecture.state == ArchitectureState(state))
        if role is not None:
            query = query.where(Architecture.role == role)
        return query

"""`Store`: searches, architectures, events and checkpoints in any SQLAlchemy database.

A SQLite file by default (`$NAS_DATABASE_URL`, else `$NAS_HOME/nas.db`), PostgreSQL in compose.
Opening a store migrates its database to the newest schema. Every public method is one short
transaction and returns frozen records, so several processes can share one database; a method
that meets a transient error (the server restarting) runs again for a grace period.

A search has one owner at a time: `claim_search` takes it atomically (row lock, or SQLite's
write lock) and hands out a `Lease`; `fenced(lease)` gives a store whose every write checks, in
its own transaction, that the lease is still current, so a process that was paused while
another took its search over cannot write once it wakes up.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import fields
from typing import Any, Literal, TypeVar

from sqlalchemy import ColumnElement, Select, delete, func, select
from sqlalchemy.orm import Session

from nas.metrics import Metrics
from nas.states import ENDED_STATUSES
from searchspace.genotype import Genotype
from searchspace.op_set import OP_SET_VERSION

from . import migrations
from .engine import WRITE_OPTION, create_store_engine, default_url
from .errors import OwnershipLost, ResumeLimitReached, SearchOwned
from .models import (
    Architecture,
    ArchitectureRole,
    ArchitectureState,
    Checkpoint,
    Event,
    Search,
    SearchStatus,
    utcnow,
)
from .pages import PageQueries, storable
from .records import ArchitectureRecord, CheckpointRecord, EventRecord, Lease, SearchRecord
from .retry import OPEN_ERRORS, describe_open_error, grace_seconds, masked, retried

SEARCH_TRANSITIONS: dict[SearchStatus, frozenset[SearchStatus]] = {
    SearchStatus.QUEUED: frozenset(
        {SearchStatus.RUNNING, SearchStatus.CANCELLED, SearchStatus.FAILED}
    ),
    SearchStatus.RUNNING: frozenset(
        {SearchStatus.FINISHED, SearchStatus.FAILED, SearchStatus.CANCELLED, SearchStatus.QUEUED,
         SearchStatus.INTERRUPTED}
    ),
    SearchStatus.FAILED: frozenset({SearchStatus.QUEUED, SearchStatus.RUNNING}),
    SearchStatus.CANCELLED: frozenset({SearchStatus.QUEUED, SearchStatus.RUNNING}),
    SearchStatus.INTERRUPTED: frozenset(
        {SearchStatus.QUEUED, SearchStatus.RUNNING, SearchStatus.CANCELLED, SearchStatus.FAILED}
    ),
    SearchStatus.FINISHED: frozenset(),
}
ABNORMAL_ENDS = frozenset({SearchStatus.RUNNING, SearchStatus.INTERRUPTED})
"""Statuses a claim resumes without a user's decision: a dead owner's, or a signal's."""
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


def _previous_run(search: Search, heartbeat_age: float | None) -> str | None:
    """What ended the search's last run, for a claim that resumes it (None: a first run)."""
    if search.status is SearchStatus.RUNNING:
        if search.owner is None:
            return "left running without an owner"
        return (f"owner {search.owner} stopped (last heartbeat "
                f"{'never' if heartbeat_age is None else f'{heartbeat_age:.0f} s ago'})")
    if search.status in (SearchStatus.QUEUED,) and search.started_at is None:
        return None
    return f"{search.status}" + (f": {search.error}" if search.error else "")


def _scored_event(row: Architecture) -> Event:
    """The event that tells followers (SSE) an architecture was scored."""
    data = {name: getattr(row, name) for name in (
        "id", "step", "role", "reward", "accuracy", "params", "flops", "latency_ms",
        "train_seconds", "error")}
    return Event(search_id=row.search_id, kind="architecture",
                 message=f"architecture {row.id} {row.state}",
                 data=data | {"state": str(row.state), "role": str(row.role)})


# The ranking of a search's architectures, one rule for every reader (`nas show` and `nas list`,
# `nas export best`, the API's best and top, the dashboard, a search's best_reward): COMPLETE
# architectures with a reward, highest first, ties by id; of the first of these roles that has
# any (ENAS's derived cells are scored on the whole validation split, its candidates on one
# batch). Other roles (transferred networks, zoo runs) are ranked among themselves on request.
RANKED_ROLES: tuple[ArchitectureRole, ...] = (ArchitectureRole.DERIVED, ArchitectureRole.CANDIDATE)


def _ranked(query: Select[Architecture]) -> Select[Architecture]:
    return query.where(Architecture.state == ArchitectureState.COMPLETE,
                       Architecture.reward.is_not(None))


def ranking_key(row: ArchitectureRecord) -> tuple[float, int]:
    """The ranking's order for scored rows of several searches (`sorted(rows, key=...)`)."""
    return (-(row.reward if row.reward is not None else float("-inf")), row.id)


def _best_reward() -> ColumnElement[float | None]:
    """A search's best reward by the ranking (a subquery correlated with `Search`)."""
    def best_of(role: str) -> ColumnElement[float | None]:
        query = _ranked(select(func.max(Architecture.reward)).where(
            Architecture.search_id == Search.id, Architecture.role == role))
        return query.correlate(Search).scalar_subquery()

    return func.coalesce(*(best_of(role) for role in RANKED_ROLES))


class Store(PageQueries):
    """The storage interface of the service; see the module docstring."""

    def __init__(self, url: str | None = None, *, migrate: bool = True) -> None:
        """Open (and migrate) the database at `url`; `StoreUnavailable` (one line naming the
        database and the cause) when it is malformed, unreachable or not a database. With
        `migrate` False an out-of-date schema raises `SchemaOutOfDate` instead."""
        self.url = url or default_url()
        self.grace_seconds = grace_seconds()
        self._lease: Lease | None = None
        self._owns_engine = True
        try:
            self._engine = create_store_engine(self.url)
            self._writer = self._engine.execution_options(**{WRITE_OPTION: True})
            if migrate:
                migrations.upgrade(self._writer)
            else:
                migrations.check_current(self._engine)
        except OPEN_ERRORS as error:
            if hasattr(self, "_engine"):
                self._engine.dispose()
            raise describe_open_error(self.url, error) from error

    def __repr__(self) -> str:
        return f"Store({masked(self.url)!r})"

    def fenced(self, lease: Lease) -> Store:
        """This store (same engine) with every write fenced by `lease`: a write raises
        `OwnershipLost`, and changes nothing, once the search has another epoch or owner."""
        fenced = copy.copy(self)
        fenced._lease, fenced._owns_engine = lease, False
        return fenced

    @property
    def lease(self) -> Lease | None:
        return self._lease

    def close(self) -> None:
        if self._owns_engine:
            self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _session(self, write: bool = False) -> Iterator[Session]:
        with Session(self._writer if write else self._engine) as session, session.begin():
            if write and self._lease is not None:
                self._check_lease(session, self._lease)
            yield session

    @staticmethod
    def _check_lease(session: Session, lease: Lease) -> None:
        """Lock the search row (PostgreSQL; SQLite's write lock is held already) and refuse
        the transaction unless `lease` is still the current one."""
        row = session.execute(
            select(Search.owner, Search.owner_epoch)
            .where(Search.id == lease.search_id)
            .with_for_update()
        ).first()
        if row is None or (row.owner, row.owner_epoch) != (lease.owner, lease.epoch):
            now = "released" if row is None or row.owner is None else (
                f"now owned by {row.owner}, epoch {row.owner_epoch}")
            raise OwnershipLost(
                f"lost ownership of search {lease.search_id} (epoch {lease.epoch}; {now}): "
                "this process stops without writing"
            )

    # ownership

    @retried
    def claim_search(
        self, search_id: str, owner: str, *, stale_after: float, max_resumes: int | None = None,
        only_from: frozenset[SearchStatus] | None = None,
    ) -> Lease:
        """Make `owner` the search's owner and set it running, atomically; its `Lease`.

        Refused (`SearchOwned`) while another owner's heartbeat is younger than `stale_after`
        seconds. A claim that resumes a search its last owner left running (it died) or
        interrupted counts a resume attempt; past `max_resumes` attempts without progress (a
        checkpoint) the search is marked failed with the reason (`ResumeLimitReached`).
        A finished search cannot be claimed, nor one whose status is not in `only_from` when
        it is given (`InvalidTransition`)."""
        with self._session(write=True) as session:
            search = self._search(session, search_id, for_update=True)
            if search.status is SearchStatus.FINISHED:
                raise InvalidTransition(f"search {search_id} already finished; nothing to run")
            if only_from is not None and search.status not in only_from:
                raise InvalidTransition(
                    f"search {search_id} is {search.status} now; this run starts only a search "
                    f"that is {' or '.join(sorted(only_from))}")
            now = utcnow()
            age = None if search.heartbeat_at is None else (
                now - search.heartbeat_at).total_seconds()
            if search.owner not in (None, owner) and age is not None and age < stale_after:
                raise SearchOwned(
                    f"search {search_id} is owned by a live process (owner {search.owner}, "
                    f"heartbeat {age:.0f} s ago); stop it first, or wait {stale_after:g} s "
                    "after it died (NAS_HEARTBEAT_STALE_SECONDS)"
                )
            previous = _previous_run(search, age)
            attempts = search.resume_attempts + 1 if search.status in ABNORMAL_ENDS else 0
            if max_resumes is not None and attempts > max_resumes:
                reason = (f"resumed {attempts - 1} times without progress (limit "
                          f"{max_resumes}); last error: {previous}")
                search.status, search.error, search.finished_at = (
                    SearchStatus.FAILED, reason, now)
                search.owner, search.heartbeat_at = None, None
                session.add(Event(search_id=search_id, kind="failed", message=reason))
            else:
                reason = None
                search.owner, search.owner_epoch = owner, search.owner_epoch + 1
                search.heartbeat_at, search.resume_attempts = now, attempts
                if search.started_at is None:
                    search.started_at = now
                search.status, search.finished_at, search.error = (
                    SearchStatus.RUNNING, None, None)
                if previous is not None:
                    session.add(Event(search_id=search_id, kind="claimed",
                                      message=f"{owner} resumes it (attempt {attempts}); "
                                      f"before: {previous}",
                                      data={"owner": owner, "attempt": attempts}))
                lease = Lease(search_id, owner, search.owner_epoch)
        if reason is not None:
            raise ResumeLimitReached(f"search {search_id} failed: {reason}")
        return lease

    @retried
    def heartbeat(self) -> None:
        """Record that the fenced store's owner is alive (`OwnershipLost` when it is not the
        owner any more)."""
        lease = self._require_lease()
        with self._session(write=True) as session:
            self._search(session, lease.search_id).heartbeat_at = utcnow()

    @retried
    def release_search(self) -> bool:
        """Give up the fenced store's lease; False when it was not current any more."""
        lease = self._require_lease()
        try:
            with self._session(write=True) as session:
                search = self._search(session, lease.search_id)
                search.owner, search.heartbeat_at = None, None
        except OwnershipLost:
            return False
        return True

    def _require_lease(self) -> Lease:
        if self._lease is None:
            raise ValueError("this store holds no lease: use store.fenced(lease)")
        return self._lease

    # searches

    @retried
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

    @retried
    def get_search(self, search_id: str) -> SearchRecord:
        with self._session() as session:
            return self._search_record(session, search_id)

    @retried
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

    @retried
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

    @retried
    def set_status(
        self, search_id: str, status: SearchStatus, error: str | None = None, *,
        only_from: frozenset[SearchStatus] | None = None, event: tuple[str, str] | None = None,
    ) -> SearchRecord:
        """Move a search along its lifecycle (see `SEARCH_TRANSITIONS`); `error` replaces the
        previous one. Entering `running` the first time sets `started_at`; ending sets
        `finished_at`, and going back to queued/running clears it. With `only_from`, only a
        search in one of those statuses moves (`InvalidTransition` otherwise); `event` (kind,
        message) is logged in the same transaction, so only when the search moved."""
        status = SearchStatus(status)
        with self._session(write=True) as session:
            search = self._search(session, search_id, for_update=True)
            if only_from is not None and search.status not in only_from:
                raise InvalidTransition(
                    f"search {search_id} is {search.status} now; only a search that is "
                    f"{' or '.join(sorted(only_from))} can go to {status}")
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
            if event is not None:
                session.add(Event(search_id=search_id, kind=event[0], message=event[1]))
            session.flush()
            return self._search_record(session, search_id)

    @retried
    def delete_search(self, search_id: str) -> None:
        """Delete a search with its architectures, events and checkpoints."""
        with self._session(write=True) as session:
            result = session.execute(delete(Search).where(Search.id == search_id))
            if result.rowcount == 0:
                raise UnknownSearch(f"unknown search id {search_id!r}")

    # architectures

    @retried
    def add_architectures(
        self,
        search_id: str,
        step: int,
        genotypes: Sequence[Genotype],
        evaluator: str,
        role: ArchitectureRole = ArchitectureRole.CANDIDATE,
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
                    genotype_id=genotype.id, state=ArchitectureState.WAITING,
                    role=ArchitectureRole(role),
                    parent_id=parent_id, evaluator=evaluator, op_set_version=OP_SET_VERSION,
                )
                for genotype in genotypes
            ]
            session.add_all(rows)
            session.flush()
            return [row.id for row in rows]

    @retried
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

    @retried
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
        metrics: Metrics | dict[str, Any] | None = None,
        error: str | None = None,
        weights_path: str | None = None,
    ) -> ArchitectureRecord:
        """WAITING/RUNNING -> COMPLETE (needs a reward), PRUNED, or FAIL (needs an error).
        `retrained` is set from `metrics.retrained`."""
        typed = None if metrics is None else Metrics.of(metrics)
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
            row.metrics = None if typed is None else _json(typed.to_json())
            row.error, row.finished_at = error, utcnow()
            row.weights_path = weights_path
            row.retrained = typed is not None and typed.retrained is not None
            session.add(_scored_event(row))
            session.flush()
            return _record(ArchitectureRecord, row)

    @retried
    def get_architecture(self, architecture_id: int) -> ArchitectureRecord:
        with self._session() as session:
            return _record(ArchitectureRecord, self._architecture(session, architecture_id))

    @retried
    def architectures(
        self,
        search_id: str,
        *,
        state: ArchitectureState | None = None,
        order: Literal["reward", "step"] = "reward",
        limit: int | None = None,
        role: ArchitectureRole | None = None,
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

    @retried
    def ranked_architectures(
        self, search_id: str, *, limit: int | None = None, role: ArchitectureRole | None = None
    ) -> list[ArchitectureRecord]:
        """The search's best architectures by the ranking (`RANKED_ROLES`), the best first;
        with `role`, those of that role (e.g. its transferred networks) ranked alike."""
        with self._session() as session:
            self._search(session, search_id)
            if role is None:
                role = next((candidate for candidate in RANKED_ROLES if session.scalar(
                    _ranked(self._architecture_query(search_id, None, candidate)).limit(1))),
                    RANKED_ROLES[-1])
            query = _ranked(self._architecture_query(search_id, None, role))
            query = query.order_by(Architecture.reward.desc(), Architecture.id).limit(limit)
            return [_record(ArchitectureRecord, row) for row in session.scalars(query)]

    @retried
    def count_architectures(
        self, search_id: str, state: ArchitectureState | None = None,
        role: ArchitectureRole | None = None,
    ) -> int:
        query = self._architecture_query(search_id, state, role)
        with self._session() as session:
            self._search(session, search_id)
            return session.scalar(select(func.count()).select_from(query.subquery())) or 0

    @retried
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

    @retried
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

    @retried
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

    @retried
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
            self._search(session, search_id).resume_attempts = 0  # it made progress
            return row.id

    @retried
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
        row = None if not storable(architecture_id) else session.get(
            Architecture, architecture_id, with_for_update=for_update)
        if row is None:
            raise UnknownArchitecture(f"unknown architecture id {architecture_id}")
        return row

    @staticmethod
    def _architecture_query(
        search_id: str, state: ArchitectureState | None, role: ArchitectureRole | None
    ) -> Select[Architecture]:
        query = select(Architecture).where(Architecture.search_id == search_id)
        if state is not None:
            query = query.where(Architecture.state == ArchitectureState(state))
        if role is not None:
            query = query.where(Architecture.role == ArchitectureRole(role))
        return query

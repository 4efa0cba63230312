"""SQLAlchemy tables of the store: searches, architectures, events and checkpoints.

`migrations/versions/` must describe exactly these tables; `tests/test_store.py` checks it.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from nas.states import ArchitectureRole, ArchitectureState, SearchStatus

__all__ = ["Architecture", "ArchitectureRole", "ArchitectureState", "Base", "Checkpoint", "Event",
           "Search", "SearchStatus"]


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every back end (SQLite stores it naive, in UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware one")
        return None if value is None else value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _enum(enum_class: type[enum.StrEnum], length: int = 16) -> Enum:
    """A VARCHAR(`length`) holding the enum's values (no native enum type, no CHECK
    constraint: a new member needs no migration)."""
    return Enum(
        enum_class,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda members: [member.value for member in members],
    )


# Named constraints keep future SQLite batch migrations (ALTER via table copy) workable.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(none_as_null=True),
    }


class Search(Base):
    __tablename__ = "searches"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    status: Mapped[SearchStatus] = mapped_column(_enum(SearchStatus), index=True)
    config: Mapped[dict[str, Any]]
    seed: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    # One owner at a time (see `Store.claim_search`): the process running the search, the
    # fencing token every one of its writes carries (raised at each claim), its last heartbeat,
    # and the claims that resumed it since it last made progress (a checkpoint).
    owner: Mapped[str | None] = mapped_column(String(64))
    owner_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    heartbeat_at: Mapped[datetime | None]
    resume_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Architecture(Base):
    __tablename__ = "architectures"
    __table_args__ = (
        Index(None, "search_id", "step"),
        Index(None, "search_id", "state"),
        # pages sorted by these (`nas.store.pages`), and the best reward, without a sort
        Index(None, "search_id", "reward"),
        Index(None, "search_id", "params"),
        Index(None, "search_id", "flops"),
        # a search's best reward by role (one seek) and its count by role (the index alone)
        Index(None, "search_id", "role", "state", "reward"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    search_id: Mapped[str] = mapped_column(ForeignKey("searches.id", ondelete="CASCADE"))
    step: Mapped[int]
    genotype_json: Mapped[str] = mapped_column("genotype", Text)
    genotype_id: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[ArchitectureState] = mapped_column(_enum(ArchitectureState))
    role: Mapped[ArchitectureRole] = mapped_column(_enum(ArchitectureRole, length=32),
                                                   default=ArchitectureRole.CANDIDATE)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("architectures.id", ondelete="SET NULL"), index=True
    )
    evaluator: Mapped[str] = mapped_column(String(64))
    reward: Mapped[float | None] = mapped_column(Float)
    accuracy: Mapped[float | None] = mapped_column(Float)
    params: Mapped[int | None] = mapped_column(BigInteger)
    flops: Mapped[int | None] = mapped_column(BigInteger)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    train_seconds: Mapped[float | None] = mapped_column(Float)
    metrics: Mapped[dict[str, Any] | None]
    """`nas.metrics.Metrics` as JSON."""
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    weights_path: Mapped[str | None] = mapped_column(Text)
    """Its trained weights (what `nas export` writes with it), when they were kept."""
    retrained: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """A derived cell also trained from scratch (its outcome: `metrics.retrained`)."""
    op_set_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    """`searchspace.op_set.OP_SET_VERSION` when it was found (rows before revision 0005: 1)."""


class Event(Base):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    search_id: Mapped[str] = mapped_column(
        ForeignKey("searches.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None]


class Checkpoint(Base):
    __tablename__ = "checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    search_id: Mapped[str] = mapped_column(
        ForeignKey("searches.id", ondelete="CASCADE"), index=True
    )
    step: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    payload: Mapped[bytes] = mapped_column(LargeBinary)

"""Initial schema: searches, architectures, events, checkpoints.

Revision ID: 0001
Revises:
Create Date: 2025-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)
STATUS = sa.String(length=16)  # models: Enum(native_enum=False, length=16), values only


def _search_id() -> sa.Column:
    return sa.Column("search_id", sa.String(length=32), nullable=False)


def _search_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["search_id"], ["searches.id"], name=op.f(f"fk_{table}_search_id_searches"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "searches",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("started_at", UTC_DATETIME, nullable=True),
        sa.Column("finished_at", UTC_DATETIME, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_searches")),
    )
    op.create_index(op.f("ix_searches_created_at"), "searches", ["created_at"])
    op.create_index(op.f("ix_searches_status"), "searches", ["status"])

    op.create_table(
        "architectures",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        _search_id(),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("genotype", sa.Text(), nullable=False),
        sa.Column("genotype_id", sa.String(length=64), nullable=False),
        sa.Column("state", STATUS, nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("evaluator", sa.String(length=64), nullable=False),
        sa.Column("reward", sa.Float(), nullable=True),
        sa.Column("accuracy", sa.Float(), nullable=True),
        sa.Column("params", sa.BigInteger(), nullable=True),
        sa.Column("flops", sa.BigInteger(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("train_seconds", sa.Float(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("finished_at", UTC_DATETIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["architectures.id"],
            name=op.f("fk_architectures_parent_id_architectures"), ondelete="SET NULL",
        ),
        _search_fk("architectures"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_architectures")),
    )
    op.create_index(op.f("ix_architectures_genotype_id"), "architectures", ["genotype_id"])
    op.create_index(op.f("ix_architectures_parent_id"), "architectures", ["parent_id"])
    op.create_index(
        op.f("ix_architectures_search_id_state"), "architectures", ["search_id", "state"]
    )
    op.create_index(
        op.f("ix_architectures_search_id_step"), "architectures", ["search_id", "step"]
    )

    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        _search_id(),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=True),
        _search_fk("events"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    op.create_index(op.f("ix_events_search_id"), "events", ["search_id"])

    op.create_table(
        "checkpoints",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        _search_id(),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        _search_fk("checkpoints"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkpoints")),
    )
    op.create_index(op.f("ix_checkpoints_search_id"), "checkpoints", ["search_id"])


def downgrade() -> None:
    for table in ("checkpoints", "events", "architectures", "searches"):
        op.drop_table(table)

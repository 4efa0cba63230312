"""One owner per search: owner, owner_epoch (fencing token), heartbeat_at, resume_attempts.

Revision ID: 0002
Revises: 0001
Create Date: 2025-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("searches") as batch:
        batch.add_column(sa.Column("owner", sa.String(length=64), nullable=True))
        batch.add_column(
            sa.Column("owner_epoch", sa.Integer(), server_default="0", nullable=False)
        )
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("resume_attempts", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("searches") as batch:
        for column in ("resume_attempts", "heartbeat_at", "owner_epoch", "owner"):
            batch.drop_column(column)

"""Indexes for a search's architectures sorted by reward, params or flops (API pages, best).

Revision ID: 0003
Revises: 0002
Create Date: 2025-12-08
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("reward", "params", "flops")


def upgrade() -> None:
    for column in COLUMNS:
        op.create_index(f"ix_architectures_search_id_{column}", "architectures",
                        ["search_id", column])


def downgrade() -> None:
    for column in COLUMNS:
        op.drop_index(f"ix_architectures_search_id_{column}", table_name="architectures")

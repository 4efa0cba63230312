"""Architectures record the op set they were found with (`searchspace.op_set`).

Rows written before this revision were found with op set 1, the only one there was.

Revision ID: 0005
Revises: 0004
Create Date: 2025-12-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("architectures") as batch:
        batch.add_column(
            sa.Column("op_set_version", sa.Integer(), server_default="1", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("architectures") as batch:
        batch.drop_column("op_set_version")

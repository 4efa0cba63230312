"""An index for a search's best reward and its count by role, read on every search summary.

`GET /searches/{id}` takes the best COMPLETE reward of the first ranked role and counts the
candidates; with only (search_id, reward) these read every row of the search (142 ms each at
100,000 architectures on SQLite). With (search_id, role, state, reward) the best is one seek
and the count reads the index alone.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ix_architectures_search_id_role_state_reward"


def upgrade() -> None:
    op.create_index(NAME, "architectures", ["search_id", "role", "state", "reward"])


def downgrade() -> None:
    op.drop_index(NAME, table_name="architectures")

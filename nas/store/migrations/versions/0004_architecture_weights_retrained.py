"""Architectures' weights path and retrained flag as columns, out of the metrics JSON.

`weights_path` takes `metrics["weights"]` (which leaves the JSON); `retrained` is true where
the metrics hold a `retrained` outcome (which stays there: it is the outcome's record).
Downgrading puts the weights path back into the metrics.

Revision ID: 0004
Revises: 0003
Create Date: 2025-12-15
"""

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000
ARCHITECTURES = sa.table(
    "architectures", sa.column("id", sa.Integer()), sa.column("metrics", sa.JSON()),
    sa.column("weights_path", sa.Text()), sa.column("retrained", sa.Boolean()),
)


def _rows(connection: sa.Connection, where: sa.ColumnElement[bool]) -> Iterator[Any]:
    """(id, metrics, weights_path) of the rows `where` holds, read in batches by id (a large
    table is not held in memory; each batch is read whole before its rows are updated)."""
    last = 0
    while True:
        rows = connection.execute(
            sa.select(ARCHITECTURES.c.id, ARCHITECTURES.c.metrics, ARCHITECTURES.c.weights_path)
            .where(ARCHITECTURES.c.id > last, where)
            .order_by(ARCHITECTURES.c.id).limit(BATCH)).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].id


def upgrade() -> None:
    with op.batch_alter_table("architectures") as batch:
        batch.add_column(sa.Column("weights_path", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column("retrained", sa.Boolean(), server_default=sa.false(), nullable=False))
    connection = op.get_bind()
    for row in _rows(connection, ARCHITECTURES.c.metrics.is_not(None)):
        metrics = dict(row.metrics) if isinstance(row.metrics, dict) else None
        if metrics is None or ("weights" not in metrics and "retrained" not in metrics):
            continue
        weights = metrics.pop("weights", None)
        connection.execute(
            ARCHITECTURES.update().where(ARCHITECTURES.c.id == row.id).values(
                metrics=metrics, weights_path=None if weights is None else str(weights),
                retrained=bool(metrics.get("retrained"))))


def downgrade() -> None:
    connection = op.get_bind()
    for row in _rows(connection, ARCHITECTURES.c.weights_path.is_not(None)):
        metrics = dict(row.metrics) if isinstance(row.metrics, dict) else {}
        connection.execute(
            ARCHITECTURES.update().where(ARCHITECTURES.c.id == row.id).values(
                metrics=metrics | {"weights": row.weights_path}))
    with op.batch_alter_table("architectures") as batch:
        batch.drop_column("retrained")
        batch.drop_column("weights_path")

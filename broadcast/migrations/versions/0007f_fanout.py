"""fan-out planning checkpoint

Revision ID: 0007f
Revises: 0006
Create Date: 2026-11-26

An alert is published with its first chunk of delivery rows (so a cancel during planning already finds it
live); `planned_at` says every row exists, so the sweep can finish a plan a dead worker left half done.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007f"
down_revision: str | None = "0008_trust"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("planned_at", sa.DateTime(timezone=True), nullable=True))
    # Alerts published before this column existed were planned in one transaction.
    op.execute("UPDATE alerts SET planned_at = published_at WHERE published_at IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_column("planned_at")

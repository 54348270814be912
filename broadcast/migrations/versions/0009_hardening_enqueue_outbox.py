"""transactional outbox of broker enqueues

Revision ID: 0009_hardening
Revises: 0007f
Create Date: 2026-12-07

An approval writes its fan-out task here in its own transaction; the API, the worker and beat put it on the broker
and delete the row, so a broker that is down at approval time delays the fan-out instead of losing it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_hardening"
down_revision: str | None = "0007f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pending_enqueues",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("task", sa.String(100), nullable=False),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.Column("queue", sa.String(50), nullable=False),
        sa.Column("alert_id", sa.Integer(), sa.ForeignKey("alerts.id", ondelete="CASCADE"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
    )
    op.create_index("ix_pending_enqueues_alert_id", "pending_enqueues", ["alert_id"])


def downgrade() -> None:
    op.drop_index("ix_pending_enqueues_alert_id", table_name="pending_enqueues")
    op.drop_table("pending_enqueues")

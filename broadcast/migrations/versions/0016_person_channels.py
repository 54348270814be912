"""one person, many channels, one warning: a subscriber's "every channel" choice and a delivery's fallback time

Revision ID: 0016_person_channels
Revises: 0015_subscriber_version
Create Date: 2026-12-07

`subscribers.channels` is already an ordered list; its order now means preference (the first is tried first).
- `subscribers.all_channels`: the person asked for every warning on every channel they have (no fallback).
- `deliveries.fallback_due`: set on a person's delivery that has a next channel, when it failed (now) or was
  sent on a channel with delivery receipts (sent + BROADCAST_DISPATCH_FALLBACK_S); the fallback step plans the
  next channel's row for rows due, then clears it (docs/fan-out.md).

Plain ADD/DROP COLUMN (no batch_alter_table): SQLite keeps the subscriber version triggers of 0015.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_person_channels"
down_revision: str | None = "0015_subscriber_version"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "subscribers", sa.Column("all_channels", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.add_column("deliveries", sa.Column("fallback_due", sa.DateTime(timezone=True), nullable=True))
    op.create_index(op.f("ix_deliveries_fallback_due"), "deliveries", ["fallback_due"])


def downgrade() -> None:
    op.drop_index(op.f("ix_deliveries_fallback_due"), table_name="deliveries")
    op.drop_column("deliveries", "fallback_due")
    op.drop_column("subscribers", "all_channels")

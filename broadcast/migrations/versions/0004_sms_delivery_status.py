"""sms delivery status and citizen commands

Revision ID: 0004
Revises: 0002
Create Date: 2026-11-27

Deliveries gain the provider's view: states `delivered` and `undelivered`, the provider's status word,
error code and status timestamps, and an index on provider_id (status callbacks look rows up by it).
Subscribers gain why they stopped (sms-stop, twilio-opt-out, undeliverable). Reports gain the command an
inbound SMS carried and the reply we gave (a retried webhook gets the same one).
Downgrade maps delivered/undelivered back to `sent` (lossy by nature).
Independent of 0003 (alert geometry, subscriber channels): it touches none of its columns.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


OLD_STATES = "'pending','sending','sent','failed','skipped'"
NEW_STATES = "'pending','sending','sent','delivered','undelivered','failed','skipped'"

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _swap_state_check(new: str, renames: dict[str, str]) -> None:
    with op.batch_alter_table("deliveries") as batch_op:
        batch_op.drop_constraint(op.f("ck_deliveries_state"), type_="check")
    for before, after in renames.items():
        op.execute(f"UPDATE deliveries SET state = '{after}' WHERE state = '{before}'")
    with op.batch_alter_table("deliveries") as batch_op:
        batch_op.create_check_constraint("state", f"state IN ({new})")


def upgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('provider_status', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('provider_error_code', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('provider_status_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_deliveries_provider_id', ['provider_id'], unique=False)
    _swap_state_check(NEW_STATES, {})

    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stop_reason', sa.String(length=32), nullable=True))

    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('command', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('reply', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.drop_column('reply')
        batch_op.drop_column('command')

    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.drop_column('stop_reason')

    _swap_state_check(OLD_STATES, {"delivered": "sent", "undelivered": "sent"})
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_provider_id')
        batch_op.drop_column('delivered_at')
        batch_op.drop_column('provider_status_at')
        batch_op.drop_column('provider_error_code')
        batch_op.drop_column('provider_status')

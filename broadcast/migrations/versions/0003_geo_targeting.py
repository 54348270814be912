"""geo targeting

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26

Alert areas keep the resolved geometry of their drawn parts (GeoJSON, EPSG:4326) and the overshoot of
their CAP polygons; subscribers get an optional X handle and their channels, and may register by point
alone (admin_code becomes nullable). Downgrade drops the new columns; a subscriber without a code gets ''.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('alert_areas', schema=None) as batch_op:
        batch_op.add_column(sa.Column('target_geometry', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('cap_overshoot_m', sa.Double(), nullable=True))

    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('x_handle', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('channels', sa.JSON(), nullable=False, server_default='["sms"]'))
        batch_op.alter_column('admin_code', existing_type=sa.String(length=13), nullable=True)


def downgrade() -> None:
    op.execute("UPDATE subscribers SET admin_code = '' WHERE admin_code IS NULL")
    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.alter_column('admin_code', existing_type=sa.String(length=13), nullable=False)
        batch_op.drop_column('channels')
        batch_op.drop_column('x_handle')

    with op.batch_alter_table('alert_areas', schema=None) as batch_op:
        batch_op.drop_column('cap_overshoot_m')
        batch_op.drop_column('target_geometry')

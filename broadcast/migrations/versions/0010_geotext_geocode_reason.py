"""reports: why the geocoder placed a report where it did

Revision ID: 0010_geotext
Revises: 0009_hardening
Create Date: 2026-12-07

`geocode_reason` holds the geoparser's reason for its choice (or for making none), Indonesian then English:
which name, which of the same-name places and why (other places named, the sender's registered area, the
jurisdiction the report arrived through, kelurahan/desa), or that a work cap cut the search short.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_geotext"
down_revision: str | None = "0009_hardening"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("geocode_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.drop_column("geocode_reason")

"""public state version: one counter every process reads to know its cached public pages are current

Revision ID: 0013_public_state_version
Revises: 0012_subscriber_consents
Create Date: 2026-12-07

Public pages and feeds are rendered once per change (broadcast.web.pagecache). The change is this counter,
moved forward in the same transaction as every alert state transition (broadcast.alerts.public.note_change).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_public_state_version"
down_revision: str | None = "0012_subscriber_consents"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "public_state_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_public_state_version")),
        sa.CheckConstraint("id = 1", name=op.f("ck_public_state_version_one_row")),
    )
    op.execute("INSERT INTO public_state_version (id, version) VALUES (1, 0)")


def downgrade() -> None:
    op.drop_table("public_state_version")

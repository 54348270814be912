"""authority: hoax clarifications pass a second person (submitted → published / rejected)

Revision ID: 0011_authority_review
Revises: 0010_geotext
Create Date: 2026-12-07

A clarification is a public page and an SMS to every forwarder: like an alert, it is submitted by one person and
published only when a second person approves it (issue 18). Existing clarifications were published already.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_authority_review"
down_revision: str | None = "0010_geotext"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("hoax_clarifications") as batch:
        batch.add_column(sa.Column("state", sa.String(length=16), nullable=False, server_default="published"))
        batch.add_column(sa.Column("approver_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("rejection_reason", sa.Text(), nullable=True))
        batch.create_foreign_key(batch.f("fk_hoax_clarifications_approver_id_users"), "users", ["approver_id"], ["id"])
        batch.create_check_constraint(
            batch.f("ck_hoax_clarifications_state"), "state IN ('submitted','published','rejected')"
        )


def downgrade() -> None:
    with op.batch_alter_table("hoax_clarifications") as batch:
        batch.drop_constraint(batch.f("ck_hoax_clarifications_state"), type_="check")
        batch.drop_constraint(batch.f("fk_hoax_clarifications_approver_id_users"), type_="foreignkey")
        batch.drop_column("rejection_reason")
        batch.drop_column("decided_at")
        batch.drop_column("approver_id")
        batch.drop_column("state")

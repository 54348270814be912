"""subscriber consent requests (double opt-in for staff registrations)

Revision ID: 0012_subscriber_consents
Revises: 0009_suite_audit_head
Create Date: 2026-12-07

A staff registration through the API no longer subscribes a number: it asks the person by SMS, and their YA reply
creates or moves the subscription (issue 24: no answer may tell whether a number is registered elsewhere).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_subscriber_consents"
down_revision: str | None = "0009_suite_audit_head"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "subscriber_consents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("admin_code", sa.String(length=13), nullable=True),
        sa.Column("lat", sa.Double(), nullable=True),
        sa.Column("lon", sa.Double(), nullable=True),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("x_handle", sa.String(length=16), nullable=True),
        sa.Column("subscriber_id", sa.Integer(), nullable=True),
        sa.Column("requested_by", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("sms_state", sa.String(length=16), nullable=False),
        sa.Column("provider_id", sa.String(length=128), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("state IN ('pending','confirmed','expired')", name=op.f("ck_subscriber_consents_state")),
        sa.CheckConstraint(
            "sms_state IN ('pending','sent','failed','skipped')", name=op.f("ck_subscriber_consents_sms_state")
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("fk_subscriber_consents_subscriber_id_subscribers"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["requested_by"], ["users.id"], name=op.f("fk_subscriber_consents_requested_by_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriber_consents")),
    )
    with op.batch_alter_table("subscriber_consents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_subscriber_consents_phone"), ["phone"], unique=False)
        batch_op.create_index(batch_op.f("ix_subscriber_consents_sms_state"), ["sms_state"], unique=False)
        batch_op.create_index(batch_op.f("ix_subscriber_consents_created_at"), ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("subscriber_consents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subscriber_consents_created_at"))
        batch_op.drop_index(batch_op.f("ix_subscriber_consents_sms_state"))
        batch_op.drop_index(batch_op.f("ix_subscriber_consents_phone"))
    op.drop_table("subscriber_consents")

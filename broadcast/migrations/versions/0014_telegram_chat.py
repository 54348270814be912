"""subscribers: the Telegram chat a subscriber is reached in

Revision ID: 0014_telegram_chat
Revises: 0013_public_state_version
Create Date: 2026-12-07

Someone who starts the bot and sends /daftar <tempat> (or shares a location) is a subscriber reached by Telegram
(issue 21); their chat id is unique like a phone number.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_telegram_chat"
down_revision: str | None = "0013_public_state_version"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("subscribers") as batch:
        batch.add_column(sa.Column("telegram_chat_id", sa.BigInteger(), nullable=True))
        batch.create_unique_constraint(batch.f("uq_subscribers_telegram_chat_id"), ["telegram_chat_id"])


def downgrade() -> None:
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_constraint(batch.f("uq_subscribers_telegram_chat_id"), type_="unique")
        batch.drop_column("telegram_chat_id")

"""subscriber version: a monotonic change marker for the warm subscriber index

Revision ID: 0015_subscriber_version
Revises: 0014_telegram_chat
Create Date: 2026-12-07

Every insert or update of a subscriber stamps `subscribers.version` (a trigger, so no write path can forget):
- PostgreSQL: the writing transaction's 64-bit id (`pg_current_xact_id()`). A reader that takes the oldest
  still-running transaction id of its snapshot as its watermark knows every change below it is committed and
  visible, whatever order the writers committed in.
- SQLite: one more than the highest version so far. Writers are serialised, so versions follow commit order.
The warm index (broadcast/subscribers/warm.py) re-reads only rows at or above its watermark (an index scan).
Subscribers are never deleted (they stop), so no tombstones are needed.

On SQLite, `op.batch_alter_table("subscribers")` in a LATER migration recreates the table and drops these
triggers: such a migration must create them again (tests/integration/test_warm_index.py fails otherwise).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_subscriber_version"
down_revision: str | None = "0014_telegram_chat"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("subscribers") as batch:
        batch.add_column(sa.Column("version", sa.BigInteger(), nullable=True))
    op.execute("UPDATE subscribers SET version = 0")
    op.create_index(op.f("ix_subscribers_version"), "subscribers", ["version"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION subscribers_stamp_version() RETURNS trigger AS $$ BEGIN "
            "NEW.version := pg_current_xact_id()::text::bigint; RETURN NEW; END; $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER subscribers_stamp_version BEFORE INSERT OR UPDATE ON subscribers "
            "FOR EACH ROW EXECUTE FUNCTION subscribers_stamp_version()"
        )
    else:
        next_version = "(SELECT COALESCE(MAX(version), 0) + 1 FROM subscribers)"
        op.execute(
            "CREATE TRIGGER subscribers_version_insert AFTER INSERT ON subscribers FOR EACH ROW BEGIN "
            f"UPDATE subscribers SET version = {next_version} WHERE id = NEW.id; END"
        )
        # The stamping update itself changes the version, so it does not fire this trigger again.
        op.execute(
            "CREATE TRIGGER subscribers_version_update AFTER UPDATE ON subscribers FOR EACH ROW "
            "WHEN NEW.version IS OLD.version BEGIN "
            f"UPDATE subscribers SET version = {next_version} WHERE id = NEW.id; END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS subscribers_stamp_version ON subscribers")
        op.execute("DROP FUNCTION IF EXISTS subscribers_stamp_version()")
    else:
        op.execute("DROP TRIGGER IF EXISTS subscribers_version_insert")
        op.execute("DROP TRIGGER IF EXISTS subscribers_version_update")
    op.drop_index(op.f("ix_subscribers_version"), table_name="subscribers")
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_column("version")

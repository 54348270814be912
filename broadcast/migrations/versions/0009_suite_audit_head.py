"""audit head: the count and last hash of the audit chain

Revision ID: 0009_suite_audit_head
Revises: 0011_authority_review
Create Date: 2026-12-07

A chain of hashes shows an edited, deleted, inserted or reordered entry, but not a cut-off tail: the entries
that remain still link up. `audit_head` (one row) holds how many entries the chain has and the hash of the
last one, written in the same transaction as each entry; `broadcast audit verify` compares the chain with it.
Like the log, the head only moves forward: a trigger refuses any update that does not add exactly one entry,
and any delete.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_suite_audit_head"
down_revision: str | None = "0011_authority_review"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FORWARD_ONLY = "audit_head only moves forward"


def upgrade() -> None:
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
        sa.CheckConstraint("id = 1", name=op.f("ck_audit_head_one_row")),
    )
    # The chain as it stands now (empty: the genesis hash).
    op.execute(
        "INSERT INTO audit_head (id, entries, hash) SELECT 1, "
        "(SELECT count(*) FROM audit_log), "
        "COALESCE((SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1), '" + "0" * 64 + "')"
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_head_forward_only() RETURNS trigger AS $$ BEGIN "
            "IF TG_OP <> 'UPDATE' THEN RAISE EXCEPTION '" + FORWARD_ONLY + "'; END IF; "
            "IF NEW.entries <> OLD.entries + 1 OR NEW.id <> OLD.id THEN "
            f"RAISE EXCEPTION '{FORWARD_ONLY}'; END IF; RETURN NEW; END; $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER audit_head_forward_only BEFORE UPDATE OR DELETE ON audit_head "
            "FOR EACH ROW EXECUTE FUNCTION audit_head_forward_only()"
        )
        op.execute(
            "CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_head_forward_only()"
        )
    else:
        op.execute(
            "CREATE TRIGGER audit_head_forward_only BEFORE UPDATE ON audit_head "
            "WHEN NEW.entries <> OLD.entries + 1 OR NEW.id <> OLD.id "
            f"BEGIN SELECT RAISE(ABORT, '{FORWARD_ONLY}'); END"
        )
        op.execute(
            "CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head "
            f"BEGIN SELECT RAISE(ABORT, '{FORWARD_ONLY}'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_head_no_truncate ON audit_head")
        op.execute("DROP TRIGGER IF EXISTS audit_head_forward_only ON audit_head")
        op.execute("DROP FUNCTION IF EXISTS audit_head_forward_only()")
    op.drop_table("audit_head")

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from broadcast.audit import service as audit
from broadcast.audit.models import AuditEntry

pytestmark = pytest.mark.integration


def _write_some(session, n=3):
    for i in range(n):
        audit.record(session, actor_id=None, action="test.thing", subject_type="thing", subject_id=i,
                     before={"n": i}, after={"n": i + 1, "label": "ä ü ✓"})
    session.commit()


def test_chain_links_and_verifies(session):
    _write_some(session)
    entries = session.scalars(sa.select(AuditEntry).order_by(AuditEntry.id)).all()
    assert entries[0].prev_hash == audit.GENESIS
    assert [e.prev_hash for e in entries[1:]] == [e.hash for e in entries[:-1]]
    check = audit.verify_chain(session)
    assert check.ok and check.entries == 3


@pytest.mark.parametrize("statement", ["UPDATE audit_log SET action = 'forged'", "DELETE FROM audit_log"])
def test_audit_log_is_append_only_in_the_database(session, statement):
    _write_some(session)
    with pytest.raises(DBAPIError, match="append-only"):
        session.execute(sa.text(statement))
    session.rollback()
    assert session.scalar(sa.select(sa.func.count()).select_from(AuditEntry)) == 3


def test_verify_detects_tampering_by_someone_who_bypasses_the_trigger(session, engine):
    _write_some(session)
    session.close()
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change"))
            conn.execute(sa.text("UPDATE audit_log SET action = 'forged' WHERE subject_id = 1"))
            conn.execute(sa.text("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_change"))
        else:
            conn.execute(sa.text("DROP TRIGGER audit_log_no_update"))
            conn.execute(sa.text("UPDATE audit_log SET action = 'forged' WHERE subject_id = 1"))
    check = audit.verify_chain(session)
    assert not check.ok
    assert check.entries == 2
    assert "hash" in check.reason

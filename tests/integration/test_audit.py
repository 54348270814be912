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


def _bypass_triggers(conn):
    """What an attacker with the database owner's rights does first: switch the append-only triggers off."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
        conn.execute(sa.text("ALTER TABLE audit_head DISABLE TRIGGER USER"))
    else:
        for name in ("audit_log_no_update", "audit_log_no_delete"):
            conn.execute(sa.text(f"DROP TRIGGER {name}"))


def _ids(conn):
    return list(conn.scalars(sa.text("SELECT id FROM audit_log ORDER BY id")))


def _delete_third(conn):
    conn.execute(sa.text("DELETE FROM audit_log WHERE id = :i"), {"i": _ids(conn)[2]})


def _swap_third_and_fourth(conn):
    a, b = _ids(conn)[2:4]
    conn.execute(sa.text("UPDATE audit_log SET id = -1 WHERE id = :a"), {"a": a})
    conn.execute(sa.text("UPDATE audit_log SET id = :a WHERE id = :b"), {"a": a, "b": b})
    conn.execute(sa.text("UPDATE audit_log SET id = :b WHERE id = -1"), {"b": b})


def _insert_after_second(conn):
    """A forged entry between the 2nd and 3rd, correctly chained to the 2nd and correctly hashed."""
    for i in reversed(_ids(conn)):  # make room: ids step by 10
        conn.execute(sa.text("UPDATE audit_log SET id = :n WHERE id = :i"), {"n": i * 10, "i": i})
    second = conn.execute(sa.text("SELECT id, hash FROM audit_log ORDER BY id LIMIT 1 OFFSET 1")).one()
    forged = AuditEntry(id=second.id + 5, at=audit.utcnow(), actor_id=None, action="alert.approve",
                        subject_type="alert", subject_id=99, before=None, after={"forged": True},
                        prev_hash=second.hash)
    forged.hash = audit.entry_hash(forged)
    conn.execute(sa.insert(AuditEntry.__table__).values(
        id=forged.id, at=forged.at, actor_id=None, action=forged.action, subject_type=forged.subject_type,
        subject_id=forged.subject_id, before=None, after=forged.after, prev_hash=forged.prev_hash, hash=forged.hash))


def _truncate_last_two(conn):
    for i in _ids(conn)[-2:]:
        conn.execute(sa.text("DELETE FROM audit_log WHERE id = :i"), {"i": i})


@pytest.mark.parametrize(
    ("tamper", "position", "reason"),
    [
        (_delete_third, 3, "prev_hash"),  # the 4th entry now sits at position 3 and does not link to the 2nd
        (_swap_third_and_fourth, 3, "prev_hash"),
        (_insert_after_second, 4, "prev_hash"),  # the forged 3rd links up; the original 3rd no longer does
        (_truncate_last_two, 4, "missing at the end"),  # what remains links up: only the head shows the cut
    ],
    ids=["deleted", "reordered", "inserted", "truncated"],
)
def test_verify_finds_the_first_broken_position(session, engine, tamper, position, reason):
    _write_some(session, n=5)
    assert audit.verify_chain(session).ok
    session.close()
    with engine.begin() as conn:
        _bypass_triggers(conn)
        tamper(conn)
    check = audit.verify_chain(session)
    assert not check.ok
    assert check.entries == position, check
    assert reason in check.reason


def test_the_head_only_moves_forward(session):
    _write_some(session)
    for statement in ("UPDATE audit_head SET entries = entries - 1", "UPDATE audit_head SET hash = 'x'",
                      "DELETE FROM audit_head"):
        with pytest.raises(DBAPIError, match="only moves forward"):
            session.execute(sa.text(statement))
        session.rollback()
    assert audit.verify_chain(session).ok

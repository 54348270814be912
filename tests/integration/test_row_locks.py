"""A row read "for update" is the writer's until it commits, on SQLite as on PostgreSQL.

SQLite has no row locks and pysqlite runs a plain SELECT outside any transaction, so before this was enforced
two workers could both read an approved alert, both publish it and both write `alert.publish` to the audit trail
(seen once in CI on the embedded default). broadcast.db takes SQLite's write lock (BEGIN IMMEDIATE) for every
SELECT ... FOR UPDATE, so every `_lock`-style read in the code base serialises like PostgreSQL's row lock.
"""

import threading

import pytest
import sqlalchemy as sa

from broadcast.alerts import service as alerts
from broadcast.alerts.models import Alert
from broadcast.alerts.schemas import AlertCreate
from broadcast.audit.models import AuditEntry
from broadcast.db import session_factory
from tests.factories import alert_payload, make_team

pytestmark = pytest.mark.integration


def _approved_alert(engine: sa.Engine) -> int:
    with session_factory(engine)() as session:
        team = make_team(session)
        alert = alerts.create_alert(
            session, data=AlertCreate(**alert_payload()), author=team["operator"], sender="t@x"
        )
        alerts.submit_alert(session, alert_id=alert.id, actor=team["operator"])
        alerts.approve_alert(session, alert_id=alert.id, approver=team["approver"], production=True)
        session.commit()
        return alert.id


def _publish_once(session: sa.orm.Session, alert_id: int) -> str:
    """What the planner does: lock the alert, publish it if it is still only approved."""
    alert = session.scalar(sa.select(Alert).where(Alert.id == alert_id).with_for_update())
    assert alert is not None
    seen = alert.state
    if seen == "approved":
        alerts.mark_published(session, alert=alert)
    return seen


def test_two_workers_locking_one_alert_publish_it_once(engine, record):
    alert_id = _approved_alert(engine)
    make = session_factory(engine)
    seen_by_second: list[str] = []

    def second_worker() -> None:
        with make() as other:
            seen_by_second.append(_publish_once(other, alert_id))
            other.commit()

    with make() as first:
        assert _publish_once(first, alert_id) == "approved"  # the first holds the lock, not yet committed
        worker = threading.Thread(target=second_worker)
        worker.start()
        worker.join(timeout=1.0)  # left waiting for the lock, it cannot have read the alert yet
        first.commit()
    worker.join(timeout=60)
    assert not worker.is_alive()

    with make() as session:
        actions = session.scalars(
            sa.select(AuditEntry.action).where(AuditEntry.subject_type == "alert", AuditEntry.subject_id == alert_id)
        ).all()
    dialect = engine.dialect.name
    record(
        "fan-out faults",
        f"two workers plan one approved alert at once ({dialect})",
        f"the second saw {seen_by_second[0] if seen_by_second else 'nothing'}; "
        f"{actions.count('alert.publish')} publish entries in the audit trail",
        ok=seen_by_second == ["published"] and actions.count("alert.publish") == 1,
    )
    assert seen_by_second == ["published"]
    assert actions.count("alert.publish") == 1, actions


def test_a_plain_read_is_not_blocked_by_a_lock(engine):
    """Readers (public pages, the console) never wait for a writer: only lockers serialise."""
    alert_id = _approved_alert(engine)
    make = session_factory(engine)
    with make() as first:
        _publish_once(first, alert_id)
        read: list[str] = []

        def reader() -> None:
            with make() as other:
                read.append(other.scalars(sa.select(Alert.state).where(Alert.id == alert_id)).one())

        t = threading.Thread(target=reader)
        t.start()
        t.join(timeout=30)
        assert read == ["approved"]  # the last committed state, read while the lock is held
        first.rollback()

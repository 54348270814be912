from datetime import timedelta

import pytest
import sqlalchemy as sa

from broadcast.alerts import service
from broadcast.alerts.models import Alert, AlertState
from broadcast.alerts.rules import InvalidTransition, RoleNotAllowed, TwoPersonRule
from broadcast.alerts.schemas import AlertCreate
from broadcast.audit import service as audit
from broadcast.db import utcnow
from tests.factories import alert_payload, make_team

pytestmark = pytest.mark.integration


@pytest.fixture
def team(session):
    t = make_team(session)
    session.commit()
    return t


def _draft(session, author, **kw):
    alert = service.create_alert(session, data=AlertCreate(**alert_payload(**kw)), author=author, sender="t@x")
    session.commit()
    return alert


def test_full_lifecycle_is_audited(session, team):
    alert = _draft(session, team["operator"])
    service.submit_alert(session, alert_id=alert.id, actor=team["operator"])
    service.approve_alert(session, alert_id=alert.id, approver=team["approver"], production=True)
    session.commit()
    assert alert.state == "approved" and alert.approver_id == team["approver"].id and alert.sent is not None
    actions = [(e.action, e.actor_id, (e.before or {}).get("state"), (e.after or {}).get("state"))
               for e in audit.entries_for(session, subject_type="alert", subject_id=alert.id)]
    assert actions == [
        ("alert.create", team["operator"].id, None, "draft"),
        ("alert.submit", team["operator"].id, "draft", "submitted"),
        ("alert.approve", team["approver"].id, "submitted", "approved"),
    ]
    assert audit.verify_chain(session).ok


def test_author_cannot_approve_own_alert_and_nothing_changes(session, team):
    admin = team["admin"]
    alert = _draft(session, admin)
    service.submit_alert(session, alert_id=alert.id, actor=admin)
    session.commit()
    before = session.scalar(sa.select(sa.func.count()).select_from(audit.AuditEntry))
    with pytest.raises(TwoPersonRule):
        service.approve_alert(session, alert_id=alert.id, approver=admin, production=True)
    session.rollback()
    assert session.get(Alert, alert.id).state == AlertState.SUBMITTED.value
    assert session.scalar(sa.select(sa.func.count()).select_from(audit.AuditEntry)) == before


def test_operator_cannot_target_outside_jurisdiction(session, team):
    with pytest.raises(service.OutsideJurisdiction, match="33.15"):
        _draft(session, team["operator"], codes=["72.71", "33.15"])
    session.rollback()
    assert session.scalar(sa.select(sa.func.count()).select_from(Alert)) == 0


def test_approver_outside_jurisdiction_cannot_approve(session, team):
    alert = _draft(session, team["operator"])
    service.submit_alert(session, alert_id=alert.id, actor=team["operator"])
    session.commit()
    with pytest.raises(service.OutsideJurisdiction):
        service.approve_alert(session, alert_id=alert.id, approver=team["approver_grobogan"], production=True)


def test_analyst_cannot_author(session, team):
    with pytest.raises(RoleNotAllowed):
        _draft(session, team["analyst"])


def test_expired_alert_cannot_be_approved(session, team):
    alert = _draft(session, team["operator"], expires=(utcnow() + timedelta(seconds=1)).isoformat())
    service.submit_alert(session, alert_id=alert.id, actor=team["operator"])
    session.commit()
    alert.expires = utcnow() - timedelta(minutes=1)
    session.commit()
    with pytest.raises(service.AlertExpired):
        service.approve_alert(session, alert_id=alert.id, approver=team["approver"], production=True)


def test_reject_sends_back_with_reason(session, team):
    alert = _draft(session, team["operator"])
    service.submit_alert(session, alert_id=alert.id, actor=team["operator"])
    service.reject_alert(session, alert_id=alert.id, approver=team["approver"], reason="Wilayah terlalu luas")
    session.commit()
    assert alert.state == "draft" and alert.rejection_reason == "Wilayah terlalu luas"
    with pytest.raises(InvalidTransition):
        service.approve_alert(session, alert_id=alert.id, approver=team["approver"], production=True)

"""Alert use cases: write, submit, approve, reject, publish. Services flush; callers commit."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from broadcast.alerts import rules
from broadcast.alerts.models import Alert, AlertArea, AlertInfo, AlertState, CapStatus
from broadcast.alerts.rules import Action
from broadcast.alerts.schemas import AlertCreate
from broadcast.audit import service as audit
from broadcast.db import utcnow
from broadcast.errors import Conflict, Forbidden, NotFound
from broadcast.users.models import User
from channels.base import AlertData, InfoData
from geo import gazetteer


class AlertNotFound(NotFound):
    code = "alert-not-found"


class OutsideJurisdiction(Forbidden):
    code = "outside-jurisdiction"


class AlertExpired(Conflict):
    code = "alert-expired"


def new_identifier() -> str:
    """A CAP identifier: unique, no spaces, commas or reserved characters."""
    return f"BCAST-{utcnow():%Y%m%d%H%M%S}-{secrets.token_hex(4)}"


def check_jurisdiction(user: User, codes: Sequence[str]) -> None:
    """Every code must lie inside the user's jurisdiction (national users may target anywhere).

    Raises: OutsideJurisdiction, naming the offending codes.
    """
    if user.jurisdiction is None:
        return
    outside = [c for c in codes if not gazetteer.contains(user.jurisdiction, c)]
    if outside:
        raise OutsideJurisdiction(
            f"Wilayah di luar yurisdiksi {user.jurisdiction}: {', '.join(outside)} / "
            f"areas outside jurisdiction {user.jurisdiction}: {', '.join(outside)}"
        )


def snapshot(alert: Alert) -> dict[str, Any]:
    """The audited view of an alert: lifecycle fields plus its content."""
    return {
        "state": alert.state,
        "status": alert.status,
        "msg_type": alert.msg_type,
        "channels": list(alert.channels),
        "expires": alert.expires,
        "approver_id": alert.approver_id,
        "infos": [
            {"language": i.language, "headline": i.headline, "severity": i.severity} for i in alert.infos
        ],
        "geocodes": sorted({c for a in alert.areas for c in a.geocodes}),
    }


def alert_codes(alert: Alert) -> list[str]:
    return sorted({c for a in alert.areas for c in a.geocodes})


def create_alert(session: Session, *, data: AlertCreate, author: User, sender: str) -> Alert:
    """A new draft alert written by `author`, inside their jurisdiction.

    Raises: RoleNotAllowed, OutsideJurisdiction.
    """
    rules.check_can_author(author.role)
    check_jurisdiction(author, [c for a in data.areas for c in a.geocodes])
    alert = Alert(
        identifier=new_identifier(),
        sender=sender,
        status=data.status,
        state=AlertState.DRAFT.value,
        channels=list(data.channels),
        author_id=author.id,
        expires=data.expires,
        note=data.note,
        infos=[
            AlertInfo(
                position=n, **info.model_dump(exclude={"expires"}), expires=info.expires or data.expires
            )
            for n, info in enumerate(data.infos)
        ],
        areas=[AlertArea(area_desc=a.area_desc, geocodes=a.geocodes) for a in data.areas],
    )
    session.add(alert)
    session.flush()
    audit.record(
        session,
        actor_id=author.id,
        action="alert.create",
        subject_type="alert",
        subject_id=alert.id,
        after=snapshot(alert),
    )
    return alert


def get_alert(session: Session, *, alert_id: int) -> Alert:
    """The alert with this id.

    Raises: AlertNotFound.
    """
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise AlertNotFound(f"Peringatan {alert_id} tidak ditemukan / alert not found")
    return alert


def find_alert_by_identifier(session: Session, *, identifier: str) -> Alert | None:
    """The alert with this CAP identifier, if any."""
    return session.scalar(select(Alert).where(Alert.identifier == identifier))


def list_alerts(
    session: Session, *, state: str | None = None, limit: int = 100, offset: int = 0
) -> list[Alert]:
    """Alerts, newest first."""
    stmt = select(Alert).order_by(Alert.id.desc()).limit(limit).offset(offset)
    if state:
        stmt = stmt.where(Alert.state == state)
    return list(session.scalars(stmt))


def _transition(alert: Alert, action: Action) -> dict[str, Any]:
    before = snapshot(alert)
    alert.state = rules.next_state(alert.state, action).value
    return before


def _lock(session: Session, alert_id: int) -> Alert:
    """Load the alert row locked, so two approvers cannot race (no-op lock on SQLite)."""
    alert = session.scalar(select(Alert).where(Alert.id == alert_id).with_for_update())
    if alert is None:
        raise AlertNotFound(f"Peringatan {alert_id} tidak ditemukan / alert not found")
    return alert


def submit_alert(session: Session, *, alert_id: int, actor: User) -> Alert:
    """Send a draft for approval (the author, or another author-role user in the jurisdiction).

    Raises: AlertNotFound, InvalidTransition, RoleNotAllowed, OutsideJurisdiction.
    """
    alert = _lock(session, alert_id)
    rules.check_can_author(actor.role)
    check_jurisdiction(actor, alert_codes(alert))
    before = _transition(alert, Action.SUBMIT)
    alert.submitted_at = utcnow()
    alert.rejection_reason = None
    session.flush()
    audit.record(
        session,
        actor_id=actor.id,
        action="alert.submit",
        subject_type="alert",
        subject_id=alert.id,
        before=before,
        after=snapshot(alert),
    )
    return alert


def approve_alert(session: Session, *, alert_id: int, approver: User) -> Alert:
    """Approve a submitted alert for publication; a second person is required.

    Raises: AlertNotFound, InvalidTransition, RoleNotAllowed, TwoPersonRule, OutsideJurisdiction,
    AlertExpired.
    """
    alert = _lock(session, alert_id)
    rules.check_can_approve(approver.role, author_id=alert.author_id, approver_id=approver.id)
    check_jurisdiction(approver, alert_codes(alert))
    now = utcnow()
    if alert.expires is not None and alert.expires <= now:
        raise AlertExpired("Peringatan sudah kedaluwarsa / the alert has already expired")
    before = _transition(alert, Action.APPROVE)
    alert.approver_id = approver.id
    alert.approved_at = now
    alert.sent = now
    session.flush()
    audit.record(
        session,
        actor_id=approver.id,
        action="alert.approve",
        subject_type="alert",
        subject_id=alert.id,
        before=before,
        after=snapshot(alert),
    )
    return alert


def reject_alert(session: Session, *, alert_id: int, approver: User, reason: str) -> Alert:
    """Send a submitted alert back to its author as a draft, with the reason.

    Raises: AlertNotFound, InvalidTransition, RoleNotAllowed, TwoPersonRule, OutsideJurisdiction.
    """
    alert = _lock(session, alert_id)
    rules.check_can_approve(approver.role, author_id=alert.author_id, approver_id=approver.id)
    check_jurisdiction(approver, alert_codes(alert))
    before = _transition(alert, Action.REJECT)
    alert.rejection_reason = reason
    session.flush()
    audit.record(
        session,
        actor_id=approver.id,
        action="alert.reject",
        subject_type="alert",
        subject_id=alert.id,
        before=before,
        after={**snapshot(alert), "reason": reason},
    )
    return alert


def mark_published(session: Session, *, alert: Alert) -> Alert:
    """Record that the fan-out has been planned: the alert is now live (system action).

    Raises: InvalidTransition.
    """
    before = _transition(alert, Action.PUBLISH)
    alert.published_at = utcnow()
    session.flush()
    audit.record(
        session,
        actor_id=None,
        action="alert.publish",
        subject_type="alert",
        subject_id=alert.id,
        before=before,
        after=snapshot(alert),
    )
    return alert


def is_live(alert: Alert) -> bool:
    """True while the alert may still be delivered: approved or sent, and not expired."""
    if alert.state not in (AlertState.APPROVED.value, AlertState.SENT.value):
        return False
    return alert.expires is None or alert.expires > utcnow()


def to_alert_data(alert: Alert, *, public_base_url: str) -> AlertData:
    """The plain data channels render from."""
    return AlertData(
        id=alert.id,
        identifier=alert.identifier,
        sender=alert.sender,
        status=alert.status,
        msg_type=alert.msg_type,
        sent=alert.sent,
        expires=alert.expires,
        area_desc="; ".join(a.area_desc for a in alert.areas),
        public_url=public_url(public_base_url, alert.identifier),
        references=alert.references,
        infos=tuple(
            InfoData(
                language=i.language,
                event=i.event,
                category=i.category,
                urgency=i.urgency,
                severity=i.severity,
                certainty=i.certainty,
                headline=i.headline,
                description=i.description,
                instruction=i.instruction,
                contact=i.contact,
            )
            for i in alert.infos
        ),
    )


def public_url(base: str, identifier: str) -> str:
    """The public page of an alert."""
    return f"{base.rstrip('/')}/peringatan/{identifier}"


def is_exercise_like(alert: Alert) -> bool:
    """Exercise, Test and other non-Actual alerts."""
    return alert.status != CapStatus.ACTUAL.value

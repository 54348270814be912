"""Alert API: write, submit, approve, reject, and watch delivery."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Query

from broadcast.alerts import service
from broadcast.alerts.schemas import (
    AlertCreate,
    AlertRead,
    AuditRead,
    DeliveryCounts,
    OutboxRead,
    RejectIn,
)
from broadcast.api.deps import ApproverDep, AuthorDep, SessionDep, SettingsDep, StaffDep
from broadcast.audit import service as audit
from broadcast.dispatch import service as dispatch
from broadcast.dispatch.models import DeliveryState
from channels.registry import RENDERERS

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])


def enqueue_fanout(alert_id: int) -> None:
    """Start delivery after the commit; if the broker is down, the beat sweep picks it up."""
    from broadcast.dispatch.tasks import fanout_alert

    try:
        fanout_alert.delay(alert_id)
    except Exception:
        log.exception("could not enqueue fan-out of alert %s; the sweep will retry", alert_id)


@router.post("", status_code=201)
def create_alert(body: AlertCreate, user: AuthorDep, session: SessionDep, settings: SettingsDep) -> AlertRead:
    """Write a new draft alert."""
    alert = service.create_alert(session, data=body, author=user, sender=settings.sender_id)
    session.commit()
    return AlertRead.model_validate(alert)


@router.get("")
def list_alerts(
    user: StaffDep,
    session: SessionDep,
    state: str | None = Query(default=None, pattern="^(draft|submitted|approved|sent)$"),
    limit: int = Query(default=50, ge=1, le=500),
    offset: int = Query(default=0, ge=0),
) -> list[AlertRead]:
    """Alerts, newest first."""
    return [
        AlertRead.model_validate(a)
        for a in service.list_alerts(session, state=state, limit=limit, offset=offset)
    ]


@router.get("/{alert_id}")
def get_alert(alert_id: int, user: StaffDep, session: SessionDep) -> AlertRead:
    """One alert."""
    return AlertRead.model_validate(service.get_alert(session, alert_id=alert_id))


@router.post("/{alert_id}/submit")
def submit(alert_id: int, user: AuthorDep, session: SessionDep) -> AlertRead:
    """Send a draft to the approval queue."""
    alert = service.submit_alert(session, alert_id=alert_id, actor=user)
    session.commit()
    return AlertRead.model_validate(alert)


@router.post("/{alert_id}/approve", status_code=202)
def approve(alert_id: int, user: ApproverDep, session: SessionDep) -> AlertRead:
    """Approve a submitted alert (by a second person) and start delivery."""
    alert = service.approve_alert(session, alert_id=alert_id, approver=user)
    session.commit()
    enqueue_fanout(alert.id)
    return AlertRead.model_validate(alert)


@router.post("/{alert_id}/reject")
def reject(alert_id: int, body: RejectIn, user: ApproverDep, session: SessionDep) -> AlertRead:
    """Send a submitted alert back to its author with a reason."""
    alert = service.reject_alert(session, alert_id=alert_id, approver=user, reason=body.reason)
    session.commit()
    return AlertRead.model_validate(alert)


@router.get("/{alert_id}/deliveries")
def deliveries(
    alert_id: int, user: StaffDep, session: SessionDep, settings: SettingsDep
) -> list[DeliveryCounts]:
    """Delivery progress per channel."""
    alert = service.get_alert(session, alert_id=alert_id)
    counts = dispatch.delivery_counts(session, alert_id=alert.id)
    out = []
    for channel in alert.channels:
        c = counts.get(channel, {})
        by_state = {s.value: c.get(s.value, 0) for s in DeliveryState}
        out.append(
            DeliveryCounts(
                channel=channel,
                mode=settings.channel_mode(channel),
                total=sum(by_state.values()),
                by_state=by_state,
            )
        )
    return out


@router.get("/{alert_id}/outbox")
def outbox(alert_id: int, user: StaffDep, session: SessionDep) -> list[OutboxRead]:
    """Messages channels in outbox mode recorded instead of sending."""
    service.get_alert(session, alert_id=alert_id)
    return [OutboxRead.model_validate(m) for m in dispatch.outbox_for(session, alert_id=alert_id)]


@router.get("/{alert_id}/preview")
def preview(
    alert_id: int, user: StaffDep, session: SessionDep, settings: SettingsDep
) -> dict[str, list[dict]]:
    """The exact text every chosen channel will send, per language."""
    alert = service.get_alert(session, alert_id=alert_id)
    data = service.to_alert_data(alert, public_base_url=settings.public_base_url)
    return {
        ch: [{"language": p.language, "text": p.text, **p.details} for p in RENDERERS[ch]().preview(data)]
        for ch in alert.channels
    }


@router.get("/{alert_id}/audit")
def audit_trail(alert_id: int, user: StaffDep, session: SessionDep) -> list[AuditRead]:
    """Every recorded change of this alert, oldest first."""
    service.get_alert(session, alert_id=alert_id)
    return [
        AuditRead.model_validate(e)
        for e in audit.entries_for(session, subject_type="alert", subject_id=alert_id)
    ]

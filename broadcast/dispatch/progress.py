"""What an alert's fan-out has done so far: counts per channel and state, the outbox, X posts made."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from broadcast.alerts import service as alerts
from broadcast.alerts.models import AlertState
from broadcast.dispatch.models import Delivery, DeliveryState, OutboxMessage


def delivery_counts(session: Session, *, alert_id: int) -> dict[str, Counter[str]]:
    """Number of deliveries per channel and state."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    stmt = (
        select(Delivery.channel, Delivery.state, func.count())
        .where(Delivery.alert_id == alert_id)
        .group_by(Delivery.channel, Delivery.state)
    )
    for channel, state, n in session.execute(stmt):
        counts[channel][state] = n
    return dict(counts)


def outbox_for(session: Session, *, alert_id: int, limit: int = 500) -> list[OutboxMessage]:
    """The outbox messages of an alert, oldest first."""
    stmt = (
        select(OutboxMessage)
        .join(Delivery, Delivery.id == OutboxMessage.delivery_id)
        .where(Delivery.alert_id == alert_id)
        .order_by(OutboxMessage.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def social_posts_since(session: Session, *, since: datetime, public_base_url: str) -> int:
    """How many X posts the service made since `since`: every published social delivery counted as the
    thread the renderer makes of it (the same renderer that posted it)."""
    from channels.social import XRenderer

    renderer = XRenderer()
    alert_ids = session.scalars(
        select(Delivery.alert_id).where(
            Delivery.channel == "social", Delivery.sent_at >= since, Delivery.state.in_(["sent", "delivered"])
        )
    ).all()
    total = 0
    for alert_id in alert_ids:
        alert = alerts.get_alert(session, alert_id=alert_id)
        total += len(renderer.render_thread(alerts.to_alert_data(alert, public_base_url=public_base_url)))
    return total


FINAL_STATES = ("sent", "delivered", "undelivered", "failed", "skipped")


@dataclass(frozen=True)
class ChannelProgress:
    channel: str
    total: int
    by_state: dict[str, int]

    @property
    def finished(self) -> int:
        """Deliveries that will not change any more (sent, delivered, failed, skipped...)."""
        return sum(self.by_state.get(s, 0) for s in FINAL_STATES)


def progress(session: Session, *, alert_id: int) -> list[ChannelProgress]:
    """Per channel of the alert: how many deliveries are in each state.

    Raises: AlertNotFound.
    """
    alert = alerts.get_alert(session, alert_id=alert_id)
    counts = delivery_counts(session, alert_id=alert.id)
    out = []
    for channel in alert.channels:
        c: Counter[str] = counts.get(channel, Counter())
        by_state = {s.value: c.get(s.value, 0) for s in DeliveryState}
        out.append(ChannelProgress(channel, sum(by_state.values()), by_state))
    return out


def is_settled(session: Session, *, alert_id: int, rows: list[ChannelProgress]) -> bool:
    """True once the alert was planned in full and no delivery is still pending or being sent."""
    alert = alerts.get_alert(session, alert_id=alert_id)
    if alert.state in (AlertState.DRAFT.value, AlertState.SUBMITTED.value, AlertState.APPROVED.value):
        return False
    if alert.planned_at is None and alerts.is_live(alert):
        return False  # rows are still being written: the first chunks may all be done before the rest exist
    return all(r.finished == r.total for r in rows)

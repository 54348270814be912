"""What an alert's fan-out has done so far: counts per channel and state, the outbox, X posts made."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, func, or_, select
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
    """True once the alert was planned in full, no delivery is still pending or being sent and no person's next
    channel is still due."""
    alert = alerts.get_alert(session, alert_id=alert_id)
    if alert.state in (AlertState.DRAFT.value, AlertState.SUBMITTED.value, AlertState.APPROVED.value):
        return False
    if alert.planned_at is None and alerts.is_live(alert):
        return False  # rows are still being written: the first chunks may all be done before the rest exist
    if not all(r.finished == r.total for r in rows):
        return False
    # Decided by one statement (one snapshot): a row still open, or a person's next channel still due. Read apart,
    # a fallback committed between the two reads (the due row cleared, the next channel's row pending) would be
    # missed by both.
    still_open = (
        select(Delivery.id)
        .where(
            Delivery.alert_id == alert_id,
            or_(Delivery.state.not_in(FINAL_STATES), Delivery.fallback_due.is_not(None)),
        )
        .exists()
    )
    return not session.scalar(select(still_open))


@dataclass(frozen=True)
class PeopleProgress:
    """An alert's personal deliveries counted by person: one person with a Telegram row that failed and an SMS
    that went counts once, as reached."""

    people: int  # with at least one delivery of the alert
    reached: int  # a message accepted by a provider (sent) or delivered on some channel
    delivered: int  # delivery confirmed on some channel
    failed: int  # nothing reached them and nothing is left to try

    @property
    def waiting(self) -> int:
        """People still being tried (a row under way, or a next channel due)."""
        return self.people - self.reached - self.failed


def people_progress(session: Session, *, alert_id: int) -> PeopleProgress:
    """How many people an alert's personal deliveries reached so far (one grouped pass over its rows)."""
    reached_states = (DeliveryState.SENT.value, DeliveryState.DELIVERED.value)
    open_states = (DeliveryState.PENDING.value, DeliveryState.SENDING.value)
    per_person = (
        select(
            func.max(case((Delivery.state.in_(reached_states), 1), else_=0)).label("reached"),
            func.max(case((Delivery.state == DeliveryState.DELIVERED.value, 1), else_=0)).label("delivered"),
            func.max(
                case((or_(Delivery.state.in_(open_states), Delivery.fallback_due.is_not(None)), 1), else_=0)
            ).label("open"),
        )
        .where(Delivery.alert_id == alert_id, Delivery.subscriber_id.is_not(None))
        .group_by(Delivery.subscriber_id)
        .subquery()
    )
    c = per_person.c
    row = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(c.reached), 0),
            func.coalesce(func.sum(c.delivered), 0),
            func.coalesce(func.sum(case((and_(c.reached == 0, c.open == 0), 1), else_=0)), 0),
        )
    ).one()
    return PeopleProgress(*(int(n) for n in row))

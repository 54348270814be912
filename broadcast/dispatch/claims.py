"""Claiming a batch of deliveries with a lease, and skipping the rows that must not go."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from broadcast.alerts import rules, target_area
from broadcast.alerts import service as alerts
from broadcast.alerts.models import Alert, AlertState
from broadcast.db import utcnow
from broadcast.dispatch import planning, sql
from broadcast.dispatch.models import Delivery, DeliveryState
from broadcast.subscribers.models import Subscriber
from channels.base import AlertData, Audience, Recipient
from channels.registry import audience_of, get_spec

log = logging.getLogger(__name__)


def is_alert_live(session: Session | Connection, *, alert_id: int) -> bool:
    """True while the alert may still be delivered (checked within long batches: a cancel stops them)."""
    # Two columns, not the alert with its infos and areas, and a plain connection will do: this runs every
    # CHECK_EVERY messages.
    row = session.execute(select(Alert.state, Alert.expires).where(Alert.id == alert_id)).first()
    if row is None or AlertState(row.state) not in rules.LIVE_STATES:
        return False
    return row.expires is None or row.expires > utcnow()


@dataclass(frozen=True, slots=True)
class ClaimedItem:
    delivery_id: int
    channel: str
    recipient: Recipient
    # When a dead worker's claim on this row began: its send may or may not have reached the provider.
    in_doubt_since: datetime | None = None
    # Its person has a channel after this one: should this one fail or go undelivered, the next is tried.
    fallback: bool = False


@dataclass
class ClaimedBatch:
    alert: AlertData | None = None
    items: list[ClaimedItem] = field(default_factory=list)


def claim(session: Session, *, delivery_ids: Sequence[int], lease_s: int, public_base_url: str) -> ClaimedBatch:
    """Atomically move these deliveries from pending (or an expired lease) to sending.

    Rows of an alert that is no longer live, or of subscribers who stopped, are skipped instead.
    A row another worker holds, or one already sent, is not returned: this is what makes a
    redelivered task harmless.
    """
    now = utcnow()
    claimable = or_(
        Delivery.state == DeliveryState.PENDING.value,
        and_(Delivery.state == DeliveryState.SENDING.value, Delivery.lease_until < now),
    )
    mine = sql.among(session, Delivery.id, delivery_ids)
    doubt_stmt = select(Delivery.id, Delivery.updated_at).where(
        mine, Delivery.state == DeliveryState.SENDING.value, Delivery.lease_until < now
    )
    in_doubt = {did: claimed_at for did, claimed_at in session.execute(doubt_stmt)}
    rows = session.execute(
        update(Delivery)
        .where(mine, claimable)
        .values(
            state=DeliveryState.SENDING.value,
            lease_until=now + timedelta(seconds=lease_s),
            attempts=Delivery.attempts + 1,
            updated_at=now,
        )
        .returning(
            Delivery.id,
            Delivery.alert_id,
            Delivery.channel,
            Delivery.recipient_key,
            Delivery.subscriber_id,
            Delivery.language,
        )
    ).all()
    if not rows:
        return ClaimedBatch()
    alert_ids = {r.alert_id for r in rows}
    if len(alert_ids) != 1:
        raise ValueError("a batch must hold deliveries of one alert")
    alert = alerts.get_alert(session, alert_id=alert_ids.pop())
    if not alerts.is_live(alert):
        skip(session, delivery_ids=[r.id for r in rows], reason=f"alert {alert.state}, not live")
        return ClaimedBatch()
    sub_ids = [r.subscriber_id for r in rows if r.subscriber_id is not None]
    # Each personal channel names the subscriber attribute its address is in (phone, Telegram chat id, …); every
    # personal channel of the alert is read, so each row knows whether its person has a channel after it.
    personal = {c: get_spec(c).subscriber_address for c in alert.channels if audience_of(c) is Audience.SUBSCRIBERS}
    personal |= {r.channel: get_spec(r.channel).subscriber_address for r in rows if r.subscriber_id is not None}
    people: dict[int, Any] = {}
    if sub_ids:
        columns = [getattr(Subscriber, f) for f in sorted(set(personal.values()))]
        stmt = select(Subscriber.id, Subscriber.channels, Subscriber.all_channels, *columns).where(
            sql.among(session, Subscriber.id, sub_ids), Subscriber.active.is_(True)
        )
        people = {sub.id: sub._mapping for sub in session.execute(stmt)}
    data = alerts.to_alert_data(alert, public_base_url=public_base_url)
    data = replace(data, **_public_post_extras(session, alert, channels={r.channel for r in rows}))
    batch = ClaimedBatch(alert=data)
    stopped = []
    for r in rows:
        fallback = False
        if r.subscriber_id is not None:
            person = people.get(r.subscriber_id)
            value = None if person is None else person[personal[r.channel]]
            if person is None or value is None:
                stopped.append(r.id)
                continue
            address = str(value)
            order = planning.person_order(person["channels"], planning.reachable_on(person, personal))
            fallback = planning.has_fallback(order, r.channel, all_channels=person["all_channels"])
        else:
            address = data.public_url
        recipient = Recipient(str(r.id), address, r.language)
        batch.items.append(ClaimedItem(r.id, r.channel, recipient, in_doubt.get(r.id), fallback))
    if stopped:
        skip(session, delivery_ids=stopped, reason="subscriber stopped")
    return batch


def _public_post_extras(session: Session, alert: Alert, *, channels: set[str]) -> dict[str, Any]:
    """For public posts: the area map, and the original's post ids an update or cancel replies to."""
    extras: dict[str, Any] = {}
    if any(audience_of(c) is Audience.PUBLIC and c != "web" for c in channels):
        try:
            extras["map_png"] = target_area.map_png(alert)
        except Exception:  # a map is a nicety: never let it stop a warning going out
            log.exception("map image for alert %s failed", alert.id)
    if alert.references_alert_id is not None:
        stmt = select(Delivery.channel, Delivery.provider_id).where(
            Delivery.alert_id == alert.references_alert_id,
            Delivery.recipient_key == "public",
            Delivery.provider_id.is_not(None),
        )
        extras["original_provider_ids"] = {channel: pid for channel, pid in session.execute(stmt)}
    return extras


def skip(session: Session, *, delivery_ids: Sequence[int], reason: str) -> None:
    """Mark deliveries skipped: they will never be sent."""
    session.execute(
        update(Delivery)
        .where(Delivery.id.in_(list(delivery_ids)))
        .values(state=DeliveryState.SKIPPED.value, error=reason, lease_until=None, updated_at=utcnow())
    )

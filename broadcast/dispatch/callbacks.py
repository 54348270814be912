"""Provider delivery reports: move a delivery forward on a status callback, never back; suppress dead numbers."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from broadcast.db import utcnow
from broadcast.dispatch import fallback
from broadcast.dispatch.models import Delivery, DeliveryState
from broadcast.subscribers import service as subscribers
from broadcast.subscribers.models import Subscriber
from channels.sms import DeliveryState as ProviderState
from channels.sms import StatusUpdate
from channels.twilio.codes import SUPPRESS_CODES

log = logging.getLogger(__name__)

# How far along a Twilio message is. A callback only ever moves a delivery to a higher rank: callbacks
# arrive out of order and are retried, and a delivered message must never go back to sent.
STATUS_RANK = {
    "accepted": 0,
    "scheduled": 0,
    "queued": 1,
    "sending": 2,
    "sent": 3,
    "failed": 4,
    "canceled": 4,
    "undelivered": 4,
    "delivered": 5,
    "read": 6,
}
# The channels whose messages are Twilio Messages, reporting through the same signed status callback.
TWILIO_CHANNELS = ("sms", "whatsapp")
OPT_OUT_CODE = 21610  # the recipient texted STOP to Twilio; every later send fails until they text START

_STATE_FOR = {
    ProviderState.IN_PROGRESS: DeliveryState.SENT,
    ProviderState.DELIVERED: DeliveryState.DELIVERED,
    ProviderState.UNDELIVERED: DeliveryState.UNDELIVERED,
    ProviderState.FAILED: DeliveryState.FAILED,
}


@dataclass(frozen=True, slots=True)
class StatusRecorded:
    """What a status callback did: which delivery it was about and whether anything changed."""

    delivery_id: int | None
    changed: bool
    stopped_subscriber_id: int | None = None


def _find(session: Session, update_: StatusUpdate, channels: Sequence[str]) -> Delivery | None:
    if update_.delivery_id and update_.delivery_id.isascii() and update_.delivery_id.isdigit():
        row = session.scalar(
            select(Delivery)
            .where(Delivery.id == int(update_.delivery_id), Delivery.channel.in_(channels))
            .with_for_update()
        )
        if row is not None:
            return row
    return session.scalar(
        select(Delivery)
        .where(Delivery.provider_id == update_.provider_id, Delivery.channel.in_(channels))
        .order_by(Delivery.id)
        .limit(1)
        .with_for_update()
    )


def record_status(
    session: Session, *, status: StatusUpdate, channels: Sequence[str] = TWILIO_CHANNELS
) -> StatusRecorded:
    """Apply a delivery status to its delivery on one of `channels` (found by our delivery id, else by the provider's
    message id): Twilio's status callbacks, the SIM gateway's sms:sent/delivered/failed events.

    Idempotent: a replayed or older status changes nothing. A permanent failure that means the number can
    never receive (21610 STOP, 21211 invalid, landline...) stops the subscriber, and their pending rows.
    """
    row = _find(session, status, channels)
    if row is None:
        log.warning("status callback for unknown message %s (delivery %s)", status.provider_id, status.delivery_id)
        return StatusRecorded(None, False)
    current = STATUS_RANK.get(row.provider_status or "", -1)
    if STATUS_RANK.get(status.status, -1) <= current:
        return StatusRecorded(row.id, False)
    if row.provider_id and row.provider_id != status.provider_id:
        # A second message for one delivery (a send retried after a lost answer): it still counts.
        log.info("delivery %s: status for message %s, stored %s", row.id, status.provider_id, row.provider_id)
    now = utcnow()
    row.provider_id = row.provider_id or status.provider_id
    row.provider_status = status.status
    row.provider_error_code = status.error_code
    row.provider_status_at = now
    row.state = _STATE_FOR[status.state].value
    row.lease_until = None
    row.sent_at = row.sent_at or now
    if status.state is ProviderState.DELIVERED:
        row.delivered_at = row.delivered_at or now
        row.error = None
    elif status.state in (ProviderState.UNDELIVERED, ProviderState.FAILED):
        provider = "twilio" if row.channel in TWILIO_CHANNELS else row.channel
        row.error = f"{provider} {status.status} code {status.error_code}"
    fallback.note_status(row, now=now)
    session.flush()
    stopped = None
    if status.error_code in SUPPRESS_CODES and row.subscriber_id is not None:
        sub = session.get(Subscriber, row.subscriber_id)
        reason = subscribers.STOP_TWILIO if status.error_code == OPT_OUT_CODE else subscribers.STOP_UNDELIVERABLE
        if sub is not None and subscribers.stop_subscriber(
            session, subscriber=sub, reason=reason, detail=f"twilio code {status.error_code}"
        ):
            skip_pending_for(session, subscriber_id=sub.id, reason=f"subscriber stopped ({reason})")
            stopped = sub.id
    return StatusRecorded(row.id, True, stopped)


def skip_pending_for(session: Session, *, subscriber_id: int, reason: str) -> int:
    """Skip every pending delivery to this subscriber and return how many; `claim` also re-checks the
    subscriber, so a row this misses (a retry put back to pending later) is skipped there."""
    result = session.execute(
        update(Delivery)
        .where(Delivery.subscriber_id == subscriber_id, Delivery.state == DeliveryState.PENDING.value)
        .values(state=DeliveryState.SKIPPED.value, error=reason, lease_until=None, updated_at=utcnow())
    )
    return int(getattr(result, "rowcount", 0) or 0)

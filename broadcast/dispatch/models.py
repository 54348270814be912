"""One delivery per alert x channel x recipient, and the outbox of rendered messages."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from broadcast.db import Base, utcnow


class DeliveryState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"  # accepted by the provider; a status callback may move it on
    DELIVERED = "delivered"  # the provider reported the handset got it
    UNDELIVERED = "undelivered"  # the provider accepted it but the carrier could not deliver it
    FAILED = "failed"
    SKIPPED = "skipped"


# Rows the provider took: an Update or Cancel must reach every one of these recipients again.
REACHED_STATES = (
    DeliveryState.SENDING.value,
    DeliveryState.SENT.value,
    DeliveryState.DELIVERED.value,
    DeliveryState.UNDELIVERED.value,
)


class Delivery(Base):
    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("alert_id", "channel", "recipient_key"),
        CheckConstraint(
            "state IN ('pending','sending','sent','delivered','undelivered','failed','skipped')", name="state"
        ),
        Index("ix_deliveries_alert_state", "alert_id", "state"),
        Index("ix_deliveries_provider_id", "provider_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(32))
    # "sub:<id>" for a subscriber, "public" for public posts and pages.
    recipient_key: Mapped[str] = mapped_column(String(64))
    subscriber_id: Mapped[int | None] = mapped_column(ForeignKey("subscribers.id"))
    language: Mapped[str] = mapped_column(String(8), default="id")
    state: Mapped[str] = mapped_column(String(16), default=DeliveryState.PENDING.value)
    attempts: Mapped[int] = mapped_column(default=0)
    provider_id: Mapped[str | None] = mapped_column(String(128))
    error: Mapped[str | None] = mapped_column(Text)
    lease_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    sent_at: Mapped[datetime | None]
    # The provider's own last status word (Twilio: queued, sent, delivered, undelivered, failed, read...).
    provider_status: Mapped[str | None] = mapped_column(String(16))
    provider_error_code: Mapped[int | None]
    provider_status_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    # When this person's next channel is due, should this row not have reached them (dispatch/fallback.py): set
    # only on rows that have a next channel, cleared once the fallback step looked at the row.
    fallback_due: Mapped[datetime | None] = mapped_column(index=True)


class OutboxMessage(Base):
    """A message a channel in outbox mode would have sent; nothing left the machine."""

    __tablename__ = "outbox_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"), unique=True)
    channel: Mapped[str] = mapped_column(String(32))
    recipient: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PendingEnqueue(Base):
    """A task to put on the broker, written in the same transaction as the change that needs it (a
    transactional outbox): an approval's fan-out survives a broker that is down at that moment."""

    __tablename__ = "pending_enqueues"

    id: Mapped[int] = mapped_column(primary_key=True)
    task: Mapped[str] = mapped_column(String(100))
    args: Mapped[list[object]] = mapped_column(JSON)
    queue: Mapped[str] = mapped_column(String(50))
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)

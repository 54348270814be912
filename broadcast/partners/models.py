"""Partner webhooks and the log of every delivery to them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from broadcast.db import Base, utcnow


class PartnerWebhook(Base):
    __tablename__ = "partner_webhooks"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(String(1000))
    # Needed in clear to sign; shown once at creation and never returned by the API afterwards.
    secret: Mapped[str] = mapped_column(String(128))
    statuses: Mapped[list[str]] = mapped_column(JSON, default=lambda: ["Actual"])
    area_code: Mapped[str | None] = mapped_column(String(13))
    active: Mapped[bool] = mapped_column(default=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PartnerDelivery(Base):
    __tablename__ = "partner_deliveries"
    __table_args__ = (
        UniqueConstraint("webhook_id", "alert_id", "event"),
        CheckConstraint("state IN ('pending','delivered','failed')", name="state"),
        Index("ix_partner_deliveries_state", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("partner_webhooks.id", ondelete="CASCADE"))
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(16))  # publish, update, cancel
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    delivered_at: Mapped[datetime | None]

"""People who asked to receive alerts for a place."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, CheckConstraint, FetchedValue, ForeignKey, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from broadcast.db import Base, utcnow


class Subscriber(Base):
    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(primary_key=True)
    phone: Mapped[str] = mapped_column(String(20), unique=True)  # E.164
    language: Mapped[str] = mapped_column(String(8), default="id")
    # Kemendagri code of the desa/kecamatan/kabupaten they registered for (located from the point when
    # only a point was given; None for a point in no known unit).
    admin_code: Mapped[str | None] = mapped_column(String(13), index=True)
    lat: Mapped[float | None]
    lon: Mapped[float | None]
    x_handle: Mapped[str | None] = mapped_column(String(16))  # without the @
    # The Telegram chat the bot sends to: someone who started the bot and registered with /daftar.
    telegram_chat_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    # Personal channels they receive alerts on, preferred first ("telegram", "sms"): each alert goes to the first
    # they can be reached on and falls back to the next when it fails or is not delivered in time (dispatch.
    # fallback); public channels (X posts, web) reach everyone anyway.
    channels: Mapped[list[str]] = mapped_column(JSON, default=lambda: ["sms"])
    # They asked for every alert on every one of their channels at once (no fallback).
    all_channels: Mapped[bool] = mapped_column(default=False, server_default=false())
    active: Mapped[bool] = mapped_column(default=True, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    stopped_at: Mapped[datetime | None]
    # Why an inactive subscriber gets nothing: "sms-stop" (they texted BERHENTI/STOP to us), "twilio-opt-out"
    # (Twilio reports 21610: they opted out with Twilio) or "undeliverable" (the number can never receive).
    stop_reason: Mapped[str | None] = mapped_column(String(32))
    # Stamped by a trigger on every insert and update (the writing transaction on PostgreSQL, a counter on
    # SQLite; migration 0015): the warm subscriber index re-reads only rows at or above its watermark.
    version: Mapped[int | None] = mapped_column(
        BigInteger, index=True, server_default=FetchedValue(), server_onupdate=FetchedValue()
    )


class ConsentRequest(Base):
    """A staff request to subscribe a number (or to move a subscriber to a new number), waiting for the person's
    own YA by SMS: double opt-in, as UU PDP 27/2022 expects of a registration someone else makes for them.

    The confirmation SMS is sent once (`sms_state` leaves "pending" in the transaction that sends it); a YA from
    `phone` before `expires_at` applies the newest pending request.
    """

    __tablename__ = "subscriber_consents"
    __table_args__ = (
        CheckConstraint("state IN ('pending','confirmed','expired')", name="state"),
        CheckConstraint("sms_state IN ('pending','sent','failed','skipped')", name="sms_state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    phone: Mapped[str] = mapped_column(String(20), index=True)  # E.164, the number asked for its consent
    language: Mapped[str] = mapped_column(String(8), default="id")
    admin_code: Mapped[str | None] = mapped_column(String(13))
    lat: Mapped[float | None]
    lon: Mapped[float | None]
    channels: Mapped[list[str]] = mapped_column(JSON, default=lambda: ["sms"])
    x_handle: Mapped[str | None] = mapped_column(String(16))
    # A PATCH to a new number: the subscriber whose number changes once the new number says YA.
    subscriber_id: Mapped[int | None] = mapped_column(ForeignKey("subscribers.id", ondelete="SET NULL"))
    requested_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    text: Mapped[str] = mapped_column(Text)  # the confirmation SMS
    sms_state: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    provider_id: Mapped[str | None] = mapped_column(String(128))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    expires_at: Mapped[datetime]
    confirmed_at: Mapped[datetime | None]

"""People who asked to receive alerts for a place."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, String
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
    # Personal channels they receive alerts on ("sms"); public channels (X posts, web) reach everyone anyway.
    channels: Mapped[list[str]] = mapped_column(JSON, default=lambda: ["sms"])
    active: Mapped[bool] = mapped_column(default=True, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    stopped_at: Mapped[datetime | None]
    # Why an inactive subscriber gets nothing: "sms-stop" (they texted BERHENTI/STOP to us), "twilio-opt-out"
    # (Twilio reports 21610: they opted out with Twilio) or "undeliverable" (the number can never receive).
    stop_reason: Mapped[str | None] = mapped_column(String(32))

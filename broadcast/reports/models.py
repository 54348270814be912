"""Incoming public reports; the raw payload is stored before anything else happens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from broadcast.db import Base, utcnow


class Report(Base):
    __tablename__ = "reports"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        CheckConstraint("state IN ('new','verified','dismissed','actioned')", name="state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(16))  # sms, x, web, api
    external_id: Mapped[str] = mapped_column(String(128))
    raw: Mapped[dict[str, object]] = mapped_column(JSON)
    text: Mapped[str] = mapped_column(Text, default="")
    author_hash: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str | None] = mapped_column(String(8))
    lat: Mapped[float | None]
    lon: Mapped[float | None]
    admin_code: Mapped[str | None] = mapped_column(String(13), index=True)
    hazard: Mapped[str | None] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), default="new")
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # For an inbound SMS that was a command (register, stop, start, help) rather than a report; None otherwise.
    command: Mapped[str | None] = mapped_column(String(16))
    # The exact reply we gave (TwiML for SMS), so a retried webhook gets the same answer.
    reply: Mapped[str | None] = mapped_column(Text)


class PollCheckpoint(Base):
    """Where a poller stopped (e.g. the newest X post id seen per account), so a restart reads nothing twice."""

    __tablename__ = "poll_checkpoints"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

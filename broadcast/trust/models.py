"""Hoax intake, clarifications, the contacts replies go to, and the replies themselves."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from broadcast.db import Base, utcnow


class HoaxReport(Base):
    """A message a citizen forwarded because they suspect it is fake (SMS `HOAKS <text>` or the web form)."""

    __tablename__ = "hoax_reports"
    __table_args__ = (UniqueConstraint("source", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(16))  # sms, web
    # The provider's message id (Twilio MessageSid) or a random id for the web form: a retried webhook stores once.
    external_id: Mapped[str] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(8), default="id")
    # Keyed hash of the sender's number (never the number); None for the anonymous web form.
    author_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    # The alert whose code the forwarded text carried, when it carried one.
    claimed_code: Mapped[str | None] = mapped_column(String(8))
    clarification_id: Mapped[int | None] = mapped_column(ForeignKey("hoax_clarifications.id"), index=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class HoaxClarification(Base):
    """The ops centre's public answer to a circulating fake: a "klarifikasi" page, optionally an Update alert."""

    __tablename__ = "hoax_clarifications"
    __table_args__ = (CheckConstraint("state IN ('submitted','published','rejected')", name="state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    title_id: Mapped[str] = mapped_column(Text)
    title_en: Mapped[str] = mapped_column(Text, default="")
    body_id: Mapped[str] = mapped_column(Text)
    body_en: Mapped[str] = mapped_column(Text, default="")
    # A representative text of the fake, shown (never with any sender detail) so people recognise it.
    hoax_text: Mapped[str] = mapped_column(Text)
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id"))
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    published_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # Two people (issue 18): submitted by one, published (or rejected) by a second; only published ones are public.
    state: Mapped[str] = mapped_column(String(16), default="submitted", server_default="published")
    approver_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None]
    rejection_reason: Mapped[str | None] = mapped_column(Text)


class ReplyContact(Base):
    """Where a reply to an inbound SMS goes: the number behind a report's author hash.

    Reports keep only the hash; this row exists so the ops centre can answer the sender (closing the loop) and is
    deleted when they text BERHENTI/STOP.
    """

    __tablename__ = "reply_contacts"

    author_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    phone: Mapped[str] = mapped_column(String(20))  # E.164
    language: Mapped[str] = mapped_column(String(8), default="id")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TrustReply(Base):
    """One reply to a citizen (report verified/actioned, hoax clarified), sent once on the channel it came from."""

    __tablename__ = "trust_replies"
    __table_args__ = (
        UniqueConstraint("subject", "kind"),
        CheckConstraint("state IN ('pending','sent','failed','skipped')", name="state"),
        Index("ix_trust_replies_state", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # What it answers: "report:<id>" or "hoax:<id>"; one reply of each kind per subject.
    subject: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))  # verified, actioned, clarified
    channel: Mapped[str] = mapped_column(String(16))  # sms, social
    # The author hash (SMS: resolved to a number only when sending) or the post id an X reply answers.
    address: Mapped[str] = mapped_column(String(128))
    language: Mapped[str] = mapped_column(String(8), default="id")
    text: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    provider_id: Mapped[str | None] = mapped_column(String(128))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]

"""Incoming public reports; the raw payload is stored before anything else happens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from broadcast.db import Base, utcnow

AWAITING_LOCATION = "awaiting"


class Report(Base):
    __tablename__ = "reports"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        CheckConstraint("state IN ('new','verified','dismissed','actioned')", name="state"),
        Index("ix_reports_processing", "processing", "lease_until"),
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
    # Normalised at intake: links to photos or posts the report carries.
    media: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Enrichment (Celery): pending → working (leased) → done; failed keeps the raw row and waits for a retry;
    # skipped for SMS commands (DAFTAR, BERHENTI...) that are not reports; awaiting (AWAITING_LOCATION) for a
    # report whose sender's location follows as its own message: enriched once it comes or lease_until passes.
    processing: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    lease_until: Mapped[datetime | None]
    enriched_at: Mapped[datetime | None] = mapped_column(index=True)
    hazard_confidence: Mapped[float | None]
    depth_cm: Mapped[int | None]
    severity: Mapped[str | None] = mapped_column(String(16))
    kecamatan_code: Mapped[str | None] = mapped_column(String(13))
    # coordinates, text, subscriber or none
    geocode_method: Mapped[str | None] = mapped_column(String(16))
    # Why the text placed the report where it did, or did not (Indonesian / English).
    geocode_reason: Mapped[str | None] = mapped_column(Text)
    place_names: Mapped[list[str]] = mapped_column(JSON, default=list)
    street: Mapped[str | None] = mapped_column(String(200))
    rw: Mapped[str | None] = mapped_column(String(8))
    alert_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("reports.id", ondelete="SET NULL"))
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id", ondelete="SET NULL"), index=True)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    notes: Mapped[str | None] = mapped_column(Text)


class Incident(Base):
    """Reports close in space and time about the same hazard, grouped; triaged like a report."""

    __tablename__ = "incidents"
    __table_args__ = (CheckConstraint("state IN ('new','verified','dismissed','actioned')", name="state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    hazard: Mapped[str] = mapped_column(String(32))
    lat: Mapped[float]
    lon: Mapped[float]
    admin_code: Mapped[str | None] = mapped_column(String(13))
    kecamatan_code: Mapped[str | None] = mapped_column(String(13))
    street: Mapped[str | None] = mapped_column(String(200))
    first_at: Mapped[datetime]
    last_at: Mapped[datetime] = mapped_column(index=True)
    report_count: Mapped[int] = mapped_column(default=0)
    max_depth_cm: Mapped[int | None]
    representative_text: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(16), default="new")
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    notes: Mapped[str | None] = mapped_column(Text)
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow, index=True)


class PollCheckpoint(Base):
    """Where a poller stopped (e.g. the newest X post id seen per account), so a restart reads nothing twice."""

    __tablename__ = "poll_checkpoints"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

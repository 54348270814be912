"""An alert is a CAP 1.2 message: the alert itself, one info block per language, and its areas."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from broadcast.db import Base, utcnow


class AlertState(StrEnum):
    """Where an alert is in its approval lifecycle (not a CAP field)."""

    DRAFT = "draft"
    SUBMITTED = "submitted"
    APPROVED = "approved"
    SENT = "sent"


class CapStatus(StrEnum):
    ACTUAL = "Actual"
    EXERCISE = "Exercise"
    SYSTEM = "System"
    TEST = "Test"
    DRAFT = "Draft"


class MsgType(StrEnum):
    ALERT = "Alert"
    UPDATE = "Update"
    CANCEL = "Cancel"
    ACK = "Ack"
    ERROR = "Error"


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (
        CheckConstraint("state IN ('draft','submitted','approved','sent')", name="state"),
        CheckConstraint("status IN ('Actual','Exercise','System','Test','Draft')", name="status"),
        CheckConstraint("msg_type IN ('Alert','Update','Cancel','Ack','Error')", name="msg_type"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    identifier: Mapped[str] = mapped_column(String(128), unique=True)
    sender: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    msg_type: Mapped[str] = mapped_column(String(16), default=MsgType.ALERT.value)
    scope: Mapped[str] = mapped_column(String(16), default="Public")
    references: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default=AlertState.DRAFT.value, index=True)
    channels: Mapped[list[str]] = mapped_column(JSON, default=list)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    approver_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    # CAP <sent>: set when the alert is approved for publication.
    sent: Mapped[datetime | None]
    expires: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    submitted_at: Mapped[datetime | None]
    approved_at: Mapped[datetime | None]
    published_at: Mapped[datetime | None]

    infos: Mapped[list[AlertInfo]] = relationship(
        back_populates="alert", cascade="all, delete-orphan", order_by="AlertInfo.position", lazy="selectin"
    )
    areas: Mapped[list[AlertArea]] = relationship(
        back_populates="alert", cascade="all, delete-orphan", order_by="AlertArea.id", lazy="selectin"
    )


class AlertInfo(Base):
    __tablename__ = "alert_infos"
    __table_args__ = (UniqueConstraint("alert_id", "language"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(default=0)
    language: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(16))
    event: Mapped[str] = mapped_column(String(255))
    urgency: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16))
    certainty: Mapped[str] = mapped_column(String(16))
    onset: Mapped[datetime | None]
    expires: Mapped[datetime | None]
    headline: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    instruction: Mapped[str] = mapped_column(Text, default="")
    web: Mapped[str | None] = mapped_column(String(512))
    contact: Mapped[str | None] = mapped_column(String(255))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    alert: Mapped[Alert] = relationship(back_populates="infos")


class AlertArea(Base):
    __tablename__ = "alert_areas"

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    area_desc: Mapped[str] = mapped_column(Text)
    # Kemendagri codes (CAP geocode valueName KEMENDAGRI).
    geocodes: Mapped[list[str]] = mapped_column(JSON, default=list)
    # CAP polygons: each a list of [lat, lon] pairs, closed.
    polygons: Mapped[list[list[list[float]]]] = mapped_column(JSON, default=list)
    # CAP circles: each {"lat", "lon", "radius_km"}.
    circles: Mapped[list[dict[str, float]]] = mapped_column(JSON, default=list)

    alert: Mapped[Alert] = relationship(back_populates="areas")

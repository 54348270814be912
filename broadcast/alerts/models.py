"""An alert is a CAP 1.2 message: the alert itself, one info block per language, and its areas."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Connection,
    ForeignKey,
    String,
    Text,
    UniqueConstraint,
    event,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from broadcast.db import Base, utcnow
from broadcast.trust.codes import new_code


class AlertState(StrEnum):
    """Where an alert is in its approval lifecycle (not a CAP field)."""

    DRAFT = "draft"
    SUBMITTED = "submitted"
    APPROVED = "approved"
    PUBLISHED = "published"
    SUPERSEDED = "superseded"  # a published Update replaced it
    CANCELLED = "cancelled"  # a published Cancel withdrew it
    EXPIRED = "expired"


ALERT_STATES = tuple(s.value for s in AlertState)


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
        CheckConstraint(
            "state IN ('draft','submitted','approved','published','superseded','cancelled','expired')",
            name="state",
        ),
        CheckConstraint("status IN ('Actual','Exercise','System','Test','Draft')", name="status"),
        CheckConstraint("msg_type IN ('Alert','Update','Cancel','Ack','Error')", name="msg_type"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    identifier: Mapped[str] = mapped_column(String(255), unique=True)
    sender: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    msg_type: Mapped[str] = mapped_column(String(16), default=MsgType.ALERT.value)
    scope: Mapped[str] = mapped_column(String(16), default="Public")
    references: Mapped[str | None] = mapped_column(Text)
    # The alert in this database that an Update or Cancel refers to.
    references_alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id"), index=True)
    note: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(String(255))
    restriction: Mapped[str | None] = mapped_column(Text)
    addresses: Mapped[str | None] = mapped_column(Text)
    codes: Mapped[list[str]] = mapped_column(JSON, default=list)
    incidents: Mapped[str | None] = mapped_column(Text)
    # Where the draft came from: authored, cap-import, bmkg; origin_ref de-duplicates re-imports.
    origin: Mapped[str] = mapped_column(String(16), default="authored")
    origin_ref: Mapped[str | None] = mapped_column(String(255), unique=True)
    # The short code every outgoing message carries ("Kode: 7KQ2MX"); anyone can check it on /cek.
    verify_code: Mapped[str | None] = mapped_column(String(8), unique=True)
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
    # Set once every delivery row of the alert exists (planning commits in chunks, see dispatch.plan).
    planned_at: Mapped[datetime | None]

    infos: Mapped[list[AlertInfo]] = relationship(
        back_populates="alert", cascade="all, delete-orphan", order_by="AlertInfo.position", lazy="selectin"
    )
    areas: Mapped[list[AlertArea]] = relationship(
        back_populates="alert", cascade="all, delete-orphan", order_by="AlertArea.id", lazy="selectin"
    )

    @property
    def is_correction(self) -> bool:
        """An Update that corrects the alert it references (the one rule: broadcast.alerts.rules.is_correction)."""
        from broadcast.alerts.rules import is_correction

        return is_correction(self.msg_type, self.note)


class AlertInfo(Base):
    __tablename__ = "alert_infos"
    # CAP allows several info blocks in one language (e.g. two en-AU blocks), so position is the key.
    __table_args__ = (UniqueConstraint("alert_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(default=0)
    language: Mapped[str] = mapped_column(String(16))
    # CAP categories, space-separated (a CAP info may have several).
    category: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(255))
    urgency: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16))
    certainty: Mapped[str] = mapped_column(String(16))
    onset: Mapped[datetime | None]
    expires: Mapped[datetime | None]
    headline: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    instruction: Mapped[str] = mapped_column(Text, default="")
    web: Mapped[str | None] = mapped_column(String(512))
    contact: Mapped[str | None] = mapped_column(Text)
    # CAP parameters as an ordered list of {"valueName", "value"} (names may repeat).
    parameters: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    hazard: Mapped[str | None] = mapped_column(String(32))  # template key, e.g. banjir
    response_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    audience: Mapped[str | None] = mapped_column(Text)
    event_codes: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    effective: Mapped[datetime | None]
    sender_name: Mapped[str | None] = mapped_column(String(255))
    resources: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)

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
    # The resolved geometry of the drawn parts (GeoJSON, lon/lat, EPSG:4326): GeoJSON, circles and CAP strings
    # the operator gave. Kemendagri codes are resolved from `geocodes`. None: nothing drawn, or an imported
    # area that is not a usable target (e.g. outside Indonesia).
    target_geometry: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Worst distance (metres) by which the CAP polygons exceed the drawn target.
    cap_overshoot_m: Mapped[float | None]
    # CAP circles: each {"lat", "lon", "radius_km"}.
    circles: Mapped[list[dict[str, float]]] = mapped_column(JSON, default=list)
    # Geocodes other than Kemendagri codes, kept as {"valueName", "value"} for round trips.
    other_geocodes: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    altitude: Mapped[float | None]
    ceiling: Mapped[float | None]
    # None: the area belongs to every info block; else only to the info at this position.
    info_position: Mapped[int | None]

    alert: Mapped[Alert] = relationship(back_populates="areas")


class PublicStateVersion(Base):
    """One row: a counter moved forward in the same transaction as every change of an alert's state, so every
    process (and host) sharing the database can tell, with one cheap read, whether a public page it rendered
    is still current (broadcast.alerts.public.note_change, broadcast.web.pagecache)."""

    __tablename__ = "public_state_version"
    __table_args__ = (CheckConstraint("id = 1", name="one_row"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)


@event.listens_for(Alert, "before_insert")
def _assign_verify_code(mapper: object, connection: Connection, target: Alert) -> None:
    """Every alert gets a unique verification code when first stored, so previews show the exact text."""
    if target.verify_code:
        return
    table = Alert.__table__
    for _ in range(20):
        code = new_code()
        if connection.execute(select(table.c.id).where(table.c.verify_code == code)).first() is None:
            target.verify_code = code
            return
    raise RuntimeError("no free verification code after 20 tries")

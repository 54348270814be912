"""API shapes for alerts (CAP 1.2 vocabulary)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, field_validator, model_validator

from channels.registry import CHANNELS
from geo import gazetteer

Category = Literal[
    "Geo",
    "Met",
    "Safety",
    "Security",
    "Rescue",
    "Fire",
    "Health",
    "Env",
    "Transport",
    "Infra",
    "CBRNE",
    "Other",
]
Urgency = Literal["Immediate", "Expected", "Future", "Past", "Unknown"]
Severity = Literal["Extreme", "Severe", "Moderate", "Minor", "Unknown"]
Certainty = Literal["Observed", "Likely", "Possible", "Unlikely", "Unknown"]
PublicStatus = Literal["Actual", "Exercise", "Test"]


def _registered_channel(name: str) -> str:
    if name not in CHANNELS:
        raise ValueError(f"unknown channel {name!r}; registered: {', '.join(CHANNELS)}")
    return name


# A channel in the registry (channels.registry.CHANNELS) when the request is validated, so a new channel needs no
# edit here; the OpenAPI enum lists the channels registered when the process started.
ChannelName = Annotated[
    str, AfterValidator(_registered_channel), WithJsonSchema({"type": "string", "enum": list(CHANNELS)})
]


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("time must include a timezone offset, e.g. 2026-11-26T10:00:00+07:00")
    return value


AwareDatetime = Annotated[datetime, AfterValidator(_aware)]


class ParameterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    valueName: str = Field(min_length=1, max_length=255)
    value: str = Field(max_length=2000)


class InfoIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    language: str = Field(default="id-ID", pattern=r"^[a-z]{2}(-[A-Z]{2})?$")
    category: Category = "Geo"
    event: str = Field(min_length=1, max_length=255)
    urgency: Urgency
    severity: Severity
    certainty: Certainty
    headline: str = Field(min_length=1, max_length=160)
    description: str = Field(default="", max_length=4000)
    instruction: str = Field(default="", max_length=2000)
    onset: AwareDatetime | None = None
    expires: AwareDatetime | None = None
    web: str | None = Field(default=None, max_length=512)
    contact: str | None = Field(default=None, max_length=255)
    parameters: list[ParameterIn] = Field(default_factory=list, max_length=50)
    hazard: str | None = Field(default=None, max_length=32, pattern=r"^[a-z_]+$")


class CircleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lon: float
    lat: float
    radius_km: float


class AreaSpec(BaseModel):
    """Where: Kemendagri codes and/or a drawn GeoJSON, a circle, a CAP polygon or a CAP circle (their union)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    geocodes: list[str] = Field(default_factory=list, max_length=500)
    # GeoJSON (lon,lat) Polygon, MultiPolygon, Feature or FeatureCollection, as drawn on the map.
    geometry: dict[str, Any] | None = None
    circle: CircleIn | None = None
    cap_polygon: str | None = Field(default=None, max_length=300_000)  # "lat,lon lat,lon ..." closed
    cap_circle: str | None = Field(default=None, max_length=100)  # "lat,lon radius_km"

    @field_validator("geocodes")
    @classmethod
    def _known_codes(cls, codes: list[str]) -> list[str]:
        bad = [c for c in codes if not gazetteer.is_well_formed(c)]
        if bad:
            raise ValueError(f"malformed Kemendagri code(s): {', '.join(bad[:10])}")
        unknown = [c for c in codes if gazetteer.find_place(c) is None]
        if unknown:
            raise ValueError(f"unknown Kemendagri code(s) / kode wilayah tidak dikenal: {', '.join(unknown[:10])}")
        return list(dict.fromkeys(codes))

    @model_validator(mode="after")
    def _something(self) -> AreaSpec:
        if not (self.geocodes or self.geometry or self.circle or self.cap_polygon or self.cap_circle):
            raise ValueError(
                "area kosong: beri kode wilayah, geometri, lingkaran atau poligon / empty area: give geocodes, "
                "a geometry, a circle, a cap_polygon or a cap_circle"
            )
        return self


class AreaIn(AreaSpec):
    area_desc: str = Field(min_length=1, max_length=500)


class AlertCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    status: PublicStatus
    channels: list[ChannelName] = Field(min_length=1)
    expires: AwareDatetime | None = None
    note: str | None = Field(default=None, max_length=2000)
    infos: list[InfoIn] = Field(min_length=1, max_length=4)
    areas: list[AreaIn] = Field(min_length=1, max_length=20)

    @model_validator(mode="after")
    def _consistent(self) -> AlertCreate:
        langs = [i.language for i in self.infos]
        if len(set(langs)) != len(langs):
            raise ValueError("one info block per language")
        if len(set(self.channels)) != len(self.channels):
            raise ValueError("each channel at most once")
        return self


class FollowUpIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str | None = Field(default=None, max_length=2000)


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    # The reason in Bahasa Indonesia (the alert's Indonesian message); `reason_en` in English, for the English
    # message. Without `reason_en` the English message says only that the warning is cancelled.
    reason: str = Field(min_length=3, max_length=2000)
    reason_en: str | None = Field(default=None, max_length=2000)


class RejectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=3, max_length=2000)


class InfoRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    language: str
    category: str
    event: str
    urgency: str
    severity: str
    certainty: str
    headline: str
    description: str
    instruction: str
    onset: datetime | None
    expires: datetime | None
    web: str | None
    contact: str | None
    hazard: str | None
    parameters: list[dict[str, str]]
    response_types: list[str]
    sender_name: str | None
    effective: datetime | None


class AreaRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    area_desc: str
    geocodes: list[str]
    polygons: list[list[list[float]]]
    circles: list[dict[str, float]]
    other_geocodes: list[dict[str, str]]
    info_position: int | None
    target_geometry: dict[str, Any] | None = None
    cap_overshoot_m: float | None = None


class AlertRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    identifier: str
    sender: str
    status: str
    msg_type: str
    scope: str
    references: str | None
    references_alert_id: int | None
    note: str | None
    origin: str
    state: str
    # The code every SMS and post of this alert carries; anyone can check it at /cek.
    verify_code: str | None = None
    channels: list[str]
    author_id: int
    approver_id: int | None
    rejection_reason: str | None
    sent: datetime | None
    expires: datetime | None
    created_at: datetime
    submitted_at: datetime | None
    approved_at: datetime | None
    published_at: datetime | None
    infos: list[InfoRead]
    areas: list[AreaRead]


class FanoutState(BaseModel):
    """Whether the fan-out is on the broker's queue, or waiting in the database for the broker to answer."""

    queued: bool
    detail: str


class ApprovalRead(AlertRead):
    fanout: FanoutState


class DeliveryCounts(BaseModel):
    channel: str
    mode: str
    total: int
    by_state: dict[str, int]


class PeopleCounts(BaseModel):
    """An alert's personal deliveries counted by person, not by row (one person, many channels, one warning)."""

    people: int
    reached: int
    delivered: int
    failed: int
    waiting: int


class OutboxRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    delivery_id: int
    channel: str
    recipient: str
    text: str
    created_at: datetime


class AuditRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor_id: int | None
    action: str
    before: dict[str, object] | None
    after: dict[str, object] | None
    hash: str


class HazardField(BaseModel):
    name: str
    label_id: str
    label_en: str
    required: bool
    example: str


class HazardRead(BaseModel):
    key: str
    name_id: str
    name_en: str
    category: str
    urgency: str
    severity: str
    certainty: str
    fields: list[HazardField]


class HazardRenderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fields: dict[str, str] = Field(default_factory=dict, max_length=30)


class CapFileReport(BaseModel):
    item: str
    valid: bool
    version: str | None
    kind: str
    reasons: list[str]
    warnings: list[str]


class CapValidationRead(BaseModel):
    valid: bool
    items: list[CapFileReport]


class SkippedRead(BaseModel):
    item: str
    reason: str


class CapImportRead(BaseModel):
    imported: list[int]
    skipped: list[SkippedRead]
    warnings: list[str]


class CapPolygonRead(BaseModel):
    cap: str  # the CAP <polygon> value
    vertices: int


class ReachRead(BaseModel):
    """Who an area reaches: matched subscribers per personal channel, and people living there (estimate)."""

    subscribers: dict[str, int]
    population: int
    by_kabupaten: list[dict[str, Any]]


class AreaResolved(BaseModel):
    target: dict[str, Any] | None  # GeoJSON geometry of the whole target (codes and drawn parts)
    codes: list[str]
    cap_polygons: list[CapPolygonRead]
    cap_circles: list[dict[str, float]]
    overshoot_m: float | None
    overshoot_target_met: bool | None
    warnings: list[str]
    reach: ReachRead

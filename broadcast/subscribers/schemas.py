"""API shapes for subscribers."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Language = Literal["id", "en"]
PersonalChannel = Literal["sms", "social"]


class SubscriberCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    phone: str = Field(min_length=4, max_length=32)  # 08…, 62… or +62…; stored as E.164
    language: Language = "id"
    channels: list[PersonalChannel] = Field(
        default_factory=lambda: ["sms"],  # type: ignore[arg-type]
        min_length=1,
        max_length=5,
    )
    x_handle: str | None = Field(default=None, max_length=16)
    lat: float | None = None
    lon: float | None = None
    admin_code: str | None = Field(default=None, max_length=13)  # desa, kecamatan or kabupaten/kota


class SubscriberUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    language: Language | None = None
    channels: list[PersonalChannel] | None = Field(default=None, min_length=1, max_length=5)
    x_handle: str | None = Field(default=None, max_length=16)
    lat: float | None = None
    lon: float | None = None
    admin_code: str | None = Field(default=None, max_length=13)


class SubscriberRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    phone: str
    language: str
    admin_code: str | None
    lat: float | None
    lon: float | None
    channels: list[str]
    x_handle: str | None
    active: bool
    created_at: datetime
    stopped_at: datetime | None


class SubscriberPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[SubscriberRead]

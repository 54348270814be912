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

    # Another number is asked for its owner's consent first (answer 202, the same for every number).
    phone: str | None = Field(default=None, min_length=4, max_length=32)
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


class ConsentPending(BaseModel):
    """The answer to a staff registration (or change of number): the same for every number, whether new,
    registered in the caller's jurisdiction or elsewhere; it never holds subscriber data."""

    status: Literal["menunggu_konfirmasi"] = "menunggu_konfirmasi"
    message: str
    expires_at: datetime  # the end of the window for the owner's YA

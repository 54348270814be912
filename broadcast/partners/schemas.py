"""API shapes for partner webhooks."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

AlertStatus = Literal["Actual", "Exercise", "Test"]


def _actual_only() -> list[AlertStatus]:
    return ["Actual"]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)
    url: str = Field(min_length=8, max_length=1000)
    statuses: list[AlertStatus] = Field(default_factory=_actual_only, min_length=1)
    area_code: str | None = Field(default=None, max_length=13)


class WebhookRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    url: str
    statuses: list[str]
    area_code: str | None
    active: bool
    created_at: datetime


class WebhookCreated(WebhookRead):
    secret: str


class DeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    alert_id: int
    event: str
    state: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None

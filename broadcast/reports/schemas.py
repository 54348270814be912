"""Report and incident input for the API."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

State = Literal["new", "verified", "dismissed", "actioned"]


class ReportCreate(BaseModel):
    """A report from a partner system (or staff): free text, optionally coordinates, media links and a time."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    text: str = Field(min_length=1, max_length=4000)
    external_id: str | None = Field(default=None, max_length=100)
    author: str | None = Field(default=None, max_length=200)  # the partner's id for the reporter; stored hashed
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    media: list[str] = Field(default_factory=list, max_length=10)
    occurred_at: AwareDatetime | None = None
    language: str | None = Field(default=None, max_length=8)
    hazard: str | None = Field(default=None, max_length=32)

    @field_validator("text", "external_id", "author", "language", "hazard", "media")
    @classmethod
    def _storable(cls, value: str | list[str] | None) -> str | list[str] | None:
        # PostgreSQL text cannot hold NUL, and UTF-8 cannot hold a lone surrogate: refuse them here (422).
        for item in [value] if isinstance(value, str) else value or []:
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("text must not contain lone surrogates") from None
            if "\x00" in item:
                raise ValueError("text must not contain NUL characters")
        return value

    @field_validator("media")
    @classmethod
    def _links(cls, links: list[str]) -> list[str]:
        bad = [link for link in links if not link.startswith(("https://", "http://")) or len(link) > 1000]
        if bad:
            raise ValueError("media must be http(s) links of at most 1000 characters")
        return links


class ReportAccepted(BaseModel):
    id: int
    created: bool


class StateIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    state: State
    note: str | None = Field(default=None, max_length=2000)


class TriageIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    assignee_id: int | None = None
    note: str | None = Field(default=None, max_length=2000)

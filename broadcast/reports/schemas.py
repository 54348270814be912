"""Report and incident input for the API."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

State = Literal["new", "verified", "dismissed", "actioned"]


class ReportCreate(BaseModel):
    """A report from a partner system (or staff): free text, optionally coordinates, media links and a time."""

    # Coordinates come as a pair: the schema says so (dependentRequired), so clients and fuzzers know it.
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={"dependentRequired": {"lat": ["lon"], "lon": ["lat"]}},
    )

    text: str = Field(min_length=1, max_length=4000, pattern=r"\S")
    external_id: str | None = Field(default=None, max_length=100)
    author: str | None = Field(default=None, max_length=200)  # the partner's id for the reporter; stored hashed
    # Omit both for no location (null is not a coordinate).
    lat: float = Field(default=None, ge=-90, le=90, validate_default=False)  # type: ignore[assignment]
    lon: float = Field(default=None, ge=-180, le=180, validate_default=False)  # type: ignore[assignment]
    media: list[Annotated[str, Field(pattern=r"^https?://", max_length=1000)]] = Field(
        default_factory=list, max_length=10
    )
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
    # Coordinates come as a pair: the schema says so (dependentRequired), so clients and fuzzers know it.
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={"dependentRequired": {"lat": ["lon"], "lon": ["lat"]}},
    )

    state: State
    note: str | None = Field(default=None, max_length=2000)


class TriageIn(BaseModel):
    # Coordinates come as a pair: the schema says so (dependentRequired), so clients and fuzzers know it.
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={"dependentRequired": {"lat": ["lon"], "lon": ["lat"]}},
    )

    assignee_id: int | None = None
    note: str | None = Field(default=None, max_length=2000)

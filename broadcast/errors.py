"""Domain errors. They carry a code and a bilingual message, and know nothing about HTTP."""

from __future__ import annotations


class BroadcastError(Exception):
    code: str = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code


class NotFound(BroadcastError):
    code = "not-found"


class Conflict(BroadcastError):
    code = "conflict"


class InvalidTransition(Conflict):
    """A state machine (an alert's lifecycle, a report's or an incident's triage) has no such step from here."""

    code = "invalid-transition"


class Forbidden(BroadcastError):
    code = "forbidden"


class Unauthorized(BroadcastError):
    code = "unauthorized"


class Invalid(BroadcastError):
    code = "invalid"


class Unavailable(BroadcastError):
    """The service cannot do this now (e.g. it is not configured for it); trying later or elsewhere may work."""

    code = "unavailable"


class TooLarge(Invalid):
    code = "payload-too-large"


class UnsupportedMediaType(Invalid):
    code = "unsupported-media-type"


class InvalidGeometry(Invalid):
    """Geographic input the geo package refused; `code` is geo's stable code (e.g. self-intersection)."""

    code = "invalid-geometry"

    @classmethod
    def from_geo(cls, exc: ValueError) -> InvalidGeometry:
        """Wrap a geo.errors.GeoError, keeping its code and its bilingual message."""
        return cls(str(exc), code=getattr(exc, "code", None))


class TooManyRequests(BroadcastError):
    """Too many attempts; `retry_after_s` says when trying again may work."""

    code = "too-many-requests"

    def __init__(self, message: str, *, retry_after_s: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after_s = retry_after_s

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

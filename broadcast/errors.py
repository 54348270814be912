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

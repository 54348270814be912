"""Signed partner webhooks: `X-Broadcast-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "t.body")>`.

Receivers check the signature with their secret, refuse timestamps outside the tolerance (replays of old
requests) and de-duplicate on `X-Broadcast-Delivery` (replays inside the window). `verify` is what a
partner runs; it needs only the standard library.
"""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "X-Broadcast-Signature"
TOLERANCE_S = 300


def sign(secret: str, body: bytes, *, timestamp: int | None = None) -> str:
    """The signature header value for `body` at `timestamp` (now by default)."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(
    secret: str, header: str | None, body: bytes, *, tolerance_s: int = TOLERANCE_S, now: int | None = None
) -> bool:
    """True when the header signs exactly this body with this secret, recently enough."""
    if not header:
        return False
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        t = int(parts["t"])
        given = parts["v1"]
    except (ValueError, KeyError):
        return False
    current = int(time.time()) if now is None else now
    if abs(current - t) > tolerance_s:
        return False
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, given)

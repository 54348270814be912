"""Validators for conditional GET: feeds and pages answer 304 when nothing changed."""

from __future__ import annotations

import hashlib
from datetime import datetime
from email.utils import format_datetime, parsedate_to_datetime

from fastapi import Request
from fastapi.responses import Response

# Clients and caches may store a copy but must revalidate every time: a new alert is never stale.
CACHE_CONTROL = "public, no-cache"


def etag_for(*parts: object) -> str:
    """A strong ETag from whatever identifies the representation's version."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:32]
    return f'"{digest}"'


def not_modified(request: Request, *, etag: str, last_modified: datetime | None) -> Response | None:
    """A 304 when the client's validators still match (If-None-Match wins over If-Modified-Since)."""
    headers = validator_headers(etag=etag, last_modified=last_modified)
    inm = request.headers.get("if-none-match")
    if inm is not None:
        tags = {t.strip() for t in inm.split(",")}
        return Response(status_code=304, headers=headers) if etag in tags or "*" in tags else None
    ims = request.headers.get("if-modified-since")
    if ims and last_modified is not None:
        try:
            since = parsedate_to_datetime(ims)
        except (TypeError, ValueError):
            return None
        # Compared to the microsecond: an alert published later in the same second is never hidden.
        if last_modified <= since:
            return Response(status_code=304, headers=headers)
    return None


def validator_headers(*, etag: str, last_modified: datetime | None) -> dict[str, str]:
    """ETag, Last-Modified and Cache-Control for a response."""
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
    if last_modified is not None:
        headers["Last-Modified"] = format_datetime(last_modified, usegmt=True)
    return headers

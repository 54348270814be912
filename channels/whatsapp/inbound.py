"""Inbound WhatsApp messages (Twilio's webhook form) as citizen messages: pure parsing, no I/O.

Twilio posts them like inbound SMS (signed with X-Twilio-Signature), with `From` = "whatsapp:+62…" and, when the
person shares a place or a photo, `Latitude`/`Longitude` and `NumMedia`/`MediaUrl0`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

PREFIX = "whatsapp:"
# Free-form messages (anything but an approved template) only within 24 h of the person's last message.
SESSION_WINDOW = timedelta(hours=24)
# Personal fields of the form besides From: never stored as they arrive.
PERSONAL_FIELDS = frozenset({"From", "WaId", "ProfileName"})


@dataclass(frozen=True, slots=True)
class WhatsAppMessage:
    """One message a person sent to our WhatsApp sender."""

    sid: str
    phone: str  # E.164, without the "whatsapp:" prefix
    text: str  # the command text in the SMS grammar ("lapor banjir", "daftar Palu Barat")
    location: tuple[float, float] | None = None  # (lon, lat) they shared
    media_url: str | None = None  # their first photo (MediaUrl0), at Twilio


def parse_inbound(form: Mapping[str, str]) -> WhatsAppMessage | None:
    """The WhatsApp message in a webhook form; None for a status callback or anything not from WhatsApp."""
    sid = form.get("MessageSid") or form.get("SmsMessageSid")
    sender = form.get("From") or ""
    if not sid or not sender.startswith(PREFIX) or "MessageStatus" in form:
        return None
    point = _location(form.get("Latitude"), form.get("Longitude"))
    media = form.get("MediaUrl0") if _count(form.get("NumMedia")) > 0 else None
    text = " ".join((form.get("Body") or "").split())
    if not text and point is not None:
        text = "daftar"  # a bare shared location registers for the place it is in
    elif not text and media:
        text = "lapor (foto / photo)"  # a bare photo is a report
    return WhatsAppMessage(sid, sender.removeprefix(PREFIX), text, point, media or None)


def _count(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def _location(lat: str | None, lon: str | None) -> tuple[float, float] | None:
    try:
        y, x = float(lat or ""), float(lon or "")
    except ValueError:
        return None
    if not (math.isfinite(x) and math.isfinite(y) and -180 <= x <= 180 and -90 <= y <= 90):
        return None
    return (x, y)


def session_open(last_inbound: datetime | None, *, now: datetime) -> bool:
    """True when a free-form message may go to a person whose last message to us arrived at `last_inbound`."""
    if last_inbound is None:
        return False
    return _aware(now) - _aware(last_inbound) < SESSION_WINDOW


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)  # SQLite gives back naive UTC


def stored_form(form: Mapping[str, str], *, author: str) -> dict[str, str]:
    """The form as it may be stored: the person's number, WhatsApp id and profile name replaced by `author`."""
    return {k: (f"hmac:{author}" if k in PERSONAL_FIELDS else v) for k, v in form.items()}

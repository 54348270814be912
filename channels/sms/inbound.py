"""Twilio webhooks, as pure functions a route can call: signature check, inbound SMS, status callbacks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import parse_qs, parse_qsl

from twilio.request_validator import RequestValidator

from channels.base import InboundEvent
from channels.twilio.client import DELIVERY_PARAM
from channels.twilio.codes import PERMANENT_CODES


class TwilioForm(dict[str, str]):
    """A parsed webhook form that also keeps repeated keys, so the signature covers every value."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        pairs = list(pairs)
        super().__init__(pairs)
        self._lists: dict[str, list[str]] = {}
        for key, value in pairs:
            self._lists.setdefault(key, []).append(value)

    def getlist(self, key: str) -> list[str]:
        """Every value of `key`, in order (RequestValidator calls this)."""
        return list(self._lists.get(key, []))


def parse_form(raw_body: bytes | str) -> TwilioForm:
    """The urlencoded body as Twilio signed it: blank values kept, repeated keys kept."""
    text = raw_body.decode("utf-8") if isinstance(raw_body, bytes) else raw_body
    return TwilioForm(parse_qsl(text, keep_blank_values=True))


def validate_signature(
    auth_token: str,
    *,
    public_base_url: str,
    path: str,
    raw_query: str,
    raw_body: bytes | str,
    signature: str | None,
) -> bool:
    """True only when `signature` (X-Twilio-Signature) signs our configured public URL and this exact form.

    The URL is rebuilt from configuration, never from the Host header: behind a TLS proxy the request
    arrives as http://internal:port and would never match what Twilio signed.
    """
    if not signature or not auth_token:
        return False
    url = public_base_url.rstrip("/") + path + (f"?{raw_query}" if raw_query else "")
    return bool(RequestValidator(auth_token).validate(url, parse_form(raw_body), signature))


def parse_inbound(form: Mapping[str, str]) -> InboundEvent | None:
    """An inbound SMS (MessageSid, From, Body) as an event with source "sms"; None for other webhooks."""
    sid = form.get("MessageSid") or form.get("SmsSid")
    sender = form.get("From")
    if not sid or not sender or "Body" not in form or "MessageStatus" in form:
        return None
    return InboundEvent(source="sms", external_id=sid, sender=sender, text=form["Body"], raw=dict(form))


class DeliveryState(StrEnum):
    IN_PROGRESS = "in_progress"  # accepted/queued/sending/sent/scheduled: not final yet
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"


_STATES = {
    "accepted": DeliveryState.IN_PROGRESS,
    "scheduled": DeliveryState.IN_PROGRESS,
    "queued": DeliveryState.IN_PROGRESS,
    "sending": DeliveryState.IN_PROGRESS,
    "sent": DeliveryState.IN_PROGRESS,
    "delivered": DeliveryState.DELIVERED,
    "read": DeliveryState.DELIVERED,
    "undelivered": DeliveryState.UNDELIVERED,
    "failed": DeliveryState.FAILED,
    "canceled": DeliveryState.FAILED,
}


class InvalidCallback(ValueError):
    """A status callback without the fields every Twilio callback carries."""


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """What a status callback says about one of our deliveries."""

    provider_id: str
    delivery_id: str | None  # from our StatusCallback URL; None if the URL lost it
    status: str  # Twilio's own word, lower case
    state: DeliveryState
    error_code: int | None
    permanent: bool  # for undelivered/failed: sending the same text again cannot help

    @property
    def final(self) -> bool:
        """True when Twilio will send no further status for this message (apart from a later "read")."""
        return self.state is not DeliveryState.IN_PROGRESS


def parse_status_callback(form: Mapping[str, str], *, raw_query: str) -> StatusUpdate:
    """A status callback form plus its URL query as a StatusUpdate.

    Unknown failure codes count as not permanent: if in doubt, send again.
    Raises: InvalidCallback.
    """
    sid = form.get("MessageSid") or form.get("SmsSid")
    status = (form.get("MessageStatus") or form.get("SmsStatus") or "").strip().lower()
    if not sid or not status:
        raise InvalidCallback("status callback without MessageSid or MessageStatus")
    state = _STATES.get(status)
    if state is None:
        raise InvalidCallback(f"unknown MessageStatus {status!r}")
    raw_code = (form.get("ErrorCode") or "").strip()
    try:
        code = int(raw_code) if raw_code else None
    except ValueError:
        raise InvalidCallback(f"ErrorCode {raw_code!r} is not a number") from None
    delivery = parse_qs(raw_query, keep_blank_values=False).get(DELIVERY_PARAM, [None])[0]
    failed = state in (DeliveryState.UNDELIVERED, DeliveryState.FAILED)
    permanent = failed and (status == "canceled" or code in PERMANENT_CODES)
    return StatusUpdate(sid, delivery, status, state, code, permanent)

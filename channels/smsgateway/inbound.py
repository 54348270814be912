"""SMS Gateway for Android webhooks as pure functions: the signature and replay window, the event envelope,
inbound SMS (parsed by the `android-sms-gateway` library) and delivery states.

The gateway signs every event with its signing key: `X-Signature` is the hex HMAC-SHA256 of the raw body
immediately followed by the `X-Timestamp` header (Unix seconds). The timestamp is ours to check: an event signed
more than the replay window away from our clock is refused, and within the window the route refuses a second
delivery of the same signed event (same id and timestamp).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from android_sms_gateway import SmsReceivedPayload, WebhookEvent

from channels.base import InboundEvent
from channels.sms.inbound import DeliveryState, StatusUpdate

SIGNATURE_HEADER = "X-Signature"
TIMESTAMP_HEADER = "X-Timestamp"
SOURCE = "smsgateway"
# The delivery states the gateway reports for a message we sent, as Twilio's words (the callbacks' ranking).
_STATES = {
    WebhookEvent.SMS_SENT.value: ("sent", DeliveryState.IN_PROGRESS),
    WebhookEvent.SMS_DELIVERED.value: ("delivered", DeliveryState.DELIVERED),
    WebhookEvent.SMS_FAILED.value: ("failed", DeliveryState.FAILED),
}
STATUS_EVENTS = frozenset(_STATES)


class InvalidEvent(ValueError):
    """A webhook body that is not a gateway event (no id, no event, a payload without its fields)."""


def sign(key: str, raw_body: bytes, timestamp: str) -> str:
    """The gateway's signature of a body sent at `timestamp`: hex HMAC-SHA256 of body + timestamp."""
    return hmac.new(key.encode(), raw_body + timestamp.encode(), hashlib.sha256).hexdigest()


def verify_signature(key: str, *, raw_body: bytes, timestamp: str | None, signature: str | None) -> bool:
    """True only when `signature` signs this exact body and timestamp with our key (constant time); never without
    a key, a timestamp or a signature."""
    if not key or not timestamp or not signature:
        return False
    return hmac.compare_digest(sign(key, raw_body, timestamp), signature.strip().lower())


def timestamp_fresh(timestamp: str, *, now: float, window_s: int) -> bool:
    """True when `timestamp` (Unix seconds, as signed) is within `window_s` of `now`, either way."""
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return False
    return abs(now - int(timestamp)) <= window_s


@dataclass(frozen=True, slots=True)
class GatewayEvent:
    """One webhook delivery: the event's own id (unique per event, unlike the content-based messageId)."""

    id: str
    event: str
    device_id: str
    payload: Mapping[str, Any]


def parse_event(body: Mapping[str, Any]) -> GatewayEvent:
    """The envelope every gateway webhook has: id, event, deviceId, payload.

    Raises: InvalidEvent.
    """
    event_id, event, payload = body.get("id"), body.get("event"), body.get("payload")
    if not isinstance(event_id, str) or not event_id or len(event_id) > 100:
        raise InvalidEvent("event without an id")
    if not isinstance(event, str) or not event:
        raise InvalidEvent("event without an event name")
    if not isinstance(payload, Mapping):
        raise InvalidEvent("event without a payload object")
    return GatewayEvent(event_id, event, str(body.get("deviceId") or ""), payload)


@dataclass(frozen=True, slots=True)
class GatewaySms:
    """An SMS the phone received: who sent it, the text (coordinates taken out) and where, when it said."""

    event_id: str
    phone: str
    text: str
    location: tuple[float, float] | None  # (lon, lat) written in the text: a maps link or "lat, lon"
    raw: dict[str, object]  # what is stored as the raw message ("From" is replaced by the sender's hash)


def parse_received(event: GatewayEvent) -> GatewaySms:
    """An `sms:received` event through the library's own payload type.

    Raises: InvalidEvent when the payload lacks the fields the gateway always sends.
    """
    try:
        # Apps before the `sender` field sent only phoneNumber (the sender's number).
        sms = SmsReceivedPayload.from_dict({"sender": event.payload.get("phoneNumber"), **event.payload})
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidEvent(f"sms:received payload without {exc}") from exc
    if not isinstance(sms.message, str) or not isinstance(sms.phone_number, str) or not sms.phone_number:
        raise InvalidEvent("sms:received payload without a sender or a text")
    text, location = split_location(sms.message)
    if not text and location is not None:
        text = "daftar"  # a bare location registers for the place it is in, as a shared location on Telegram does
    raw: dict[str, object] = {
        "event": event.event,
        "id": event.id,
        "deviceId": event.device_id,
        "From": sms.phone_number,
        "message": sms.message,
        "receivedAt": sms.received_at.isoformat(),
        "simNumber": sms.sim_number,
    }
    return GatewaySms(event.id, sms.phone_number, text, location, raw)


def parse_inbound(body: Mapping[str, Any]) -> InboundEvent | None:
    """A gateway webhook as a citizen message (source "smsgateway"); None for any other event."""
    try:
        event = parse_event(body)
        if event.event != WebhookEvent.SMS_RECEIVED.value:
            return None
        sms = parse_received(event)
    except InvalidEvent:
        return None
    return InboundEvent(source=SOURCE, external_id=sms.event_id, sender=sms.phone, text=sms.text, raw=sms.raw)


def parse_status(event: GatewayEvent) -> StatusUpdate:
    """An `sms:sent`/`sms:delivered`/`sms:failed` event as a status update for the delivery it names (our
    delivery id leads the message id we gave the gateway, see `sender.message_id`).

    Raises: InvalidEvent.
    """
    found = _STATES.get(event.event)
    message_id = event.payload.get("messageId")
    if found is None or not isinstance(message_id, str) or not message_id:
        raise InvalidEvent(f"{event.event} without a messageId")
    status, state = found
    delivery = message_id.split("-", 1)[0]
    return StatusUpdate(message_id, delivery if delivery.isdigit() else None, status, state, None, False)


# Decimal degrees with at least two decimals, as maps links and phones write them: "-0.8917, 119.8707",
# "https://maps.google.com/?q=-0.8917,119.8707", "geo:-0.8917,119.8707", ".../@-0.8917,119.8707,15z".
_PAIR = re.compile(r"(?<![\d.])(-?\d{1,3}\.\d{2,})\s*[,;/ ]\s*(-?\d{1,3}\.\d{2,})(?![\d.])")
_LAT, _LON = (-11.5, 6.5), (94.0, 141.5)  # Indonesia with a margin: which number is which is never ambiguous


def split_location(text: str) -> tuple[str, tuple[float, float] | None]:
    """The text without the first coordinate pair in Indonesia (and the link around it), and that point as
    (lon, lat); the text unchanged and None when it holds none. Either order is understood."""
    for match in _PAIR.finditer(text):
        a, b = float(match[1]), float(match[2])
        if _LAT[0] <= a <= _LAT[1] and _LON[0] <= b <= _LON[1]:
            point = (b, a)
        elif _LON[0] <= a <= _LON[1] and _LAT[0] <= b <= _LAT[1]:
            point = (a, b)
        else:
            continue
        start, end = match.start(), match.end()
        token_start = text.rfind(" ", 0, start) + 1
        token_end = len(text) if text.find(" ", end) < 0 else text.find(" ", end)
        token = text[token_start:token_end]
        if "://" in token or token.startswith("geo:"):  # a link: it goes whole
            start, end = token_start, token_end
        return " ".join(f"{text[:start]} {text[end:]}".split()), point
    return text, None

"""Provider webhooks: Twilio's status callbacks and inbound SMS (X-Twilio-Signature), Telegram updates (the
webhook secret) and the SIM gateway's events (X-Signature over body + X-Timestamp, within a replay window).

The signature is checked against our configured public URL (never the Host header), the raw query and the
raw form, before anything is parsed or stored. Outside production the test token is used; with no token at
all the webhooks refuse every request (503), because an unverified webhook could stop anyone's alerts.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Annotated, Any

import redis
from fastapi import APIRouter, Depends, Request, Response

from broadcast.api.deps import SessionDep, SettingsDep
from broadcast.dispatch import callbacks
from broadcast.errors import Forbidden, Invalid, TooLarge, Unavailable, UnsupportedMediaType
from broadcast.redisclient import redis_client
from broadcast.reports.tasks import kick_enrichment
from broadcast.settings import SMSGATEWAY_WEBHOOK_PATH, TWILIO_INBOUND_PATH, TWILIO_STATUS_PATH, Settings
from broadcast.webhooks import service
from channels.sms import InvalidCallback, parse_form, parse_inbound, parse_status_callback, validate_signature
from channels.sms.inbound import TwilioForm
from channels.smsgateway.inbound import (
    SIGNATURE_HEADER,
    STATUS_EVENTS,
    TIMESTAMP_HEADER,
    GatewayEvent,
    InvalidEvent,
    parse_event,
    parse_received,
    parse_status,
    timestamp_fresh,
    verify_signature,
)
from channels.telegram.inbound import SECRET_HEADER, TelegramMessage, parse_update, verify_secret
from channels.telegram.settings import TELEGRAM_WEBHOOK_PATH
from channels.whatsapp.inbound import parse_inbound as parse_whatsapp
from channels.whatsapp.settings import WHATSAPP_INBOUND_PATH

log = logging.getLogger(__name__)
router = APIRouter(tags=["webhooks"])

# Twilio's forms are a few kilobytes (a 1,600-character body at most); anything far larger is not Twilio.
MAX_FORM_BYTES = 64 * 1024
FORM_TYPE = "application/x-www-form-urlencoded"


@dataclass(frozen=True, slots=True)
class SignedForm:
    form: TwilioForm
    raw_query: str


async def signed_form(request: Request, settings: SettingsDep) -> SignedForm:
    """The request's form, only once X-Twilio-Signature proves Twilio sent it to our public URL.

    Raises: Unavailable (no token configured), UnsupportedMediaType, TooLarge, Invalid, Forbidden.
    """
    token = settings.twilio_webhook_token
    if not token:
        raise Unavailable(
            "Webhook Twilio belum dikonfigurasi / Twilio webhooks are not configured (no token to verify with)",
            code="twilio-webhook-not-configured",
        )
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM_TYPE:
        raise UnsupportedMediaType(
            f"Harus {FORM_TYPE} / must be {FORM_TYPE}, got {content_type or 'nothing'}",
        )
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise TooLarge(f"Formulir melebihi {MAX_FORM_BYTES} byte / form larger than {MAX_FORM_BYTES} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Invalid("Formulir bukan UTF-8 / form is not UTF-8", code="malformed-form") from exc
    raw_query = request.scope.get("query_string", b"").decode("latin-1")
    ok = validate_signature(
        token,
        public_base_url=settings.twilio_webhook_base_url,
        path=request.url.path,
        raw_query=raw_query,
        raw_body=text,
        signature=request.headers.get("x-twilio-signature"),
    )
    if not ok:
        log.warning("twilio webhook %s: missing or invalid signature", request.url.path)
        raise Forbidden("Tanda tangan Twilio tidak valid / invalid Twilio signature", code="invalid-signature")
    return SignedForm(parse_form(text), raw_query)


SignedFormDep = Annotated[SignedForm, Depends(signed_form)]


def body_doc(content_type: str, properties: dict[str, str], headers: tuple[str, ...]) -> dict[str, object]:
    """The OpenAPI description of a webhook body its route reads raw (the signature covers the exact bytes)."""
    fields = {name: {"type": kind} for name, kind in properties.items()}
    return {
        "requestBody": {
            "required": True,
            "content": {content_type: {"schema": {"type": "object", "properties": fields}}},
        },
        "parameters": [{"name": h, "in": "header", "required": True, "schema": {"type": "string"}} for h in headers],
    }


FORM_BODY_DOC = body_doc(
    FORM_TYPE,
    {"MessageSid": "string", "MessageStatus": "string", "From": "string", "Body": "string"},
    ("X-Twilio-Signature",),
)
# The route options of every webhook answering in TwiML (inbound SMS and WhatsApp).
TWIML_ROUTE: dict[str, Any] = {
    "status_code": 200,
    "response_class": Response,
    "responses": {200: {"description": "TwiML reply", "content": {"application/xml": {"schema": {"type": "string"}}}}},
}


@router.post(TWILIO_STATUS_PATH, status_code=200, openapi_extra=FORM_BODY_DOC)
def twilio_status(signed: SignedFormDep, session: SessionDep) -> Response:
    """Record a delivery status callback; a replayed or out-of-order one changes nothing.

    Raises: Invalid (no MessageSid/MessageStatus, unknown status).
    """
    try:
        status = parse_status_callback(signed.form, raw_query=signed.raw_query)
    except InvalidCallback as exc:
        raise Invalid(f"Callback status tidak valid / invalid status callback: {exc}", code="invalid-callback") from exc
    callbacks.record_status(session, status=status)
    session.commit()
    return Response(status_code=200)


@router.post(TWILIO_INBOUND_PATH, openapi_extra=FORM_BODY_DOC, **TWIML_ROUTE)
def twilio_inbound(signed: SignedFormDep, session: SessionDep, settings: SettingsDep) -> Response:
    """Store an inbound SMS, act on its command (DAFTAR, BERHENTI, MULAI, BANTUAN, LAPOR) and reply in TwiML.

    Raises: Invalid (no MessageSid, From or Body).
    """
    event = parse_inbound(signed.form)
    if event is None:
        raise Invalid("SMS masuk tanpa MessageSid, From atau Body / inbound SMS without MessageSid, From or Body")
    twiml = service.handle_inbound_sms(
        session,
        event=event,
        author_key=settings.report_author_key,
        advanced_opt_out=settings.twilio.advanced_opt_out,
        public_base_url=settings.public_base_url,
    )
    session.commit()
    kick_enrichment()  # a LAPOR waits for enrichment; a retried webhook or a command finds nothing to do
    return Response(content=twiml, media_type="application/xml")


@router.post(WHATSAPP_INBOUND_PATH, openapi_extra=FORM_BODY_DOC, **TWIML_ROUTE)
def twilio_whatsapp(signed: SignedFormDep, session: SessionDep, settings: SettingsDep) -> Response:
    """Store an inbound WhatsApp message (text, shared location, photo), act on its command (DAFTAR, LAPOR, CEK,
    HOAKS, BERHENTI, MULAI, BANTUAN) and reply in TwiML within the 24-hour session window; signed like SMS.

    Raises: Invalid (no MessageSid, or not from a whatsapp: address).
    """
    message = parse_whatsapp(signed.form)
    if message is None:
        raise Invalid(
            "Pesan WhatsApp tanpa MessageSid atau pengirim whatsapp: / WhatsApp message without MessageSid or a "
            "whatsapp: sender",
            code="invalid-whatsapp-message",
        )
    twiml = service.handle_inbound_whatsapp(
        session,
        message=message,
        form=signed.form,
        author_key=settings.report_author_key,
        public_base_url=settings.public_base_url,
    )
    session.commit()
    kick_enrichment()  # a LAPOR waits for enrichment; a retried webhook or a command finds nothing to do
    return Response(content=twiml, media_type="application/xml")


MAX_UPDATE_BYTES = 64 * 1024
TELEGRAM_BODY_DOC = body_doc("application/json", {"update_id": "integer"}, (SECRET_HEADER,))


@dataclass(frozen=True, slots=True)
class TelegramUpdate:
    update: dict[str, object]
    message: TelegramMessage | None


async def telegram_update_body(request: Request, settings: SettingsDep) -> TelegramUpdate:
    """The update, only once X-Telegram-Bot-Api-Secret-Token matches our webhook secret (constant time).

    Raises: Unavailable (no secret configured), Forbidden (missing or wrong secret), TooLarge, Invalid.
    """
    secret = settings.telegram.webhook_secret.get_secret_value()
    if not secret:
        raise Unavailable(
            "Webhook Telegram belum dikonfigurasi / Telegram webhook is not configured (no secret to verify with)",
            code="telegram-webhook-not-configured",
        )
    if not verify_secret(secret, request.headers.get(SECRET_HEADER)):
        log.warning("telegram webhook: missing or wrong secret token")
        raise Forbidden("Token rahasia Telegram tidak valid / invalid Telegram secret token", code="invalid-signature")
    body = await request.body()
    if len(body) > MAX_UPDATE_BYTES:
        raise TooLarge(f"Update melebihi {MAX_UPDATE_BYTES} byte / update larger than {MAX_UPDATE_BYTES} bytes")
    try:
        update = json.loads(body)
        if not isinstance(update, dict):
            raise ValueError("not a JSON object")
        message = parse_update(update)
    except ValueError as exc:
        raise Invalid(f"Update Telegram tidak valid / invalid Telegram update: {exc}", code="invalid-update") from exc
    return TelegramUpdate(update, message)


@router.post(
    TELEGRAM_WEBHOOK_PATH,
    status_code=200,
    openapi_extra=TELEGRAM_BODY_DOC,
    response_class=Response,
    responses={
        200: {
            "description": "Bot API call answering the update (sendMessage), or empty",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
def telegram_update(
    verified: Annotated[TelegramUpdate, Depends(telegram_update_body)], session: SessionDep, settings: SettingsDep
) -> Response:
    """Store a Telegram message to the bot, act on its command (/daftar, /lapor, /cek, /hoaks, /berhenti, /mulai,
    /bantuan) and answer with the reply; only with our X-Telegram-Bot-Api-Secret-Token. A replayed update_id
    changes nothing.
    """
    if verified.message is None:
        return Response(status_code=200)
    reply = service.handle_telegram_update(
        session,
        message=verified.message,
        raw=verified.update,
        author_key=settings.report_author_key,
        public_base_url=settings.public_base_url,
        location_window_s=settings.telegram.location_window_s,
    )
    session.commit()
    if reply is None:
        return Response(status_code=200)
    kick_enrichment()  # a /lapor waits for enrichment; a command finds nothing to do
    return Response(content=json.dumps(reply), media_type="application/json")


GATEWAY_BODY_DOC = body_doc(
    "application/json", {"id": "string", "event": "string", "payload": "object"}, (SIGNATURE_HEADER, TIMESTAMP_HEADER)
)


@dataclass(frozen=True, slots=True)
class SignedEvent:
    event: GatewayEvent
    timestamp: str


async def gateway_event(request: Request, settings: SettingsDep) -> SignedEvent:
    """The gateway's event, only once X-Signature signs this body and X-Timestamp with our signing key and that
    timestamp is within the replay window.

    Raises: Unavailable (no signing key configured), TooLarge, Forbidden (bad or missing signature, stale or future
    timestamp), Invalid (not a gateway event).
    """
    key = settings.smsgateway.signing_key.get_secret_value()
    if not key:
        raise Unavailable(
            "Webhook gateway SMS belum dikonfigurasi / SMS gateway webhook is not configured (no signing key)",
            code="smsgateway-webhook-not-configured",
        )
    body = await request.body()
    if len(body) > MAX_UPDATE_BYTES:
        raise TooLarge(f"Event melebihi {MAX_UPDATE_BYTES} byte / event larger than {MAX_UPDATE_BYTES} bytes")
    stamp = request.headers.get(TIMESTAMP_HEADER)
    if not verify_signature(key, raw_body=body, timestamp=stamp, signature=request.headers.get(SIGNATURE_HEADER)):
        log.warning("smsgateway webhook: missing or invalid signature")
        raise Forbidden(
            "Tanda tangan gateway SMS tidak valid / invalid SMS gateway signature", code="invalid-signature"
        )
    window = settings.smsgateway.replay_window_s
    if stamp is None or not timestamp_fresh(stamp, now=time.time(), window_s=window):
        log.warning("smsgateway webhook: timestamp %r outside the replay window", (stamp or "")[:20])
        raise Forbidden(
            f"Waktu tanda tangan di luar {window} detik / signature timestamp outside the {window} s replay window",
            code="stale-signature",
        )
    try:
        data = json.loads(body)
        if not isinstance(data, dict):
            raise InvalidEvent("not a JSON object")
        event = parse_event(data)
    except ValueError as exc:
        raise Invalid(
            f"Event gateway SMS tidak valid / invalid SMS gateway event: {exc}", code="invalid-event"
        ) from exc
    return SignedEvent(event, stamp)


def _seen_key(event_id: str) -> str:
    return f"smsgateway:seen:{event_id}"


def _claim_delivery(settings: Settings, signed: SignedEvent) -> None:
    """Note this signed delivery (event id and timestamp) as used; the same signed request again is a replay.

    The gateway signs each attempt anew, so its own retry of an event (after an answer it never got) carries a new
    timestamp and is handled again, idempotently; only a copy of a request we already took is refused.
    Raises: Forbidden (a replay), Unavailable (Redis down: nothing is taken unchecked).
    """
    key = _seen_key(signed.event.id)
    try:
        client = redis_client(settings.resolved_redis_url, timeout_s=2)
        pipe = client.pipeline()
        pipe.sadd(key, signed.timestamp)
        pipe.expire(key, 2 * settings.smsgateway.replay_window_s + 60)
        added, _ = pipe.execute()
    except (redis.RedisError, OSError) as exc:
        raise Unavailable(
            "Pemeriksaan ulang-kirim tidak tersedia / replay check unavailable, try again",
            code="replay-check-unavailable",
        ) from exc
    if not added:
        log.warning("smsgateway webhook: event %s replayed", signed.event.id)
        raise Forbidden("Event ini sudah diterima / this signed event was already received", code="replayed-event")


def _release_delivery(settings: Settings, signed: SignedEvent) -> None:
    """Forget a delivery we could not handle, so the gateway's retry (or this same request) is taken again."""
    try:
        redis_client(settings.resolved_redis_url, timeout_s=2).srem(_seen_key(signed.event.id), signed.timestamp)
    except (redis.RedisError, OSError):
        log.warning("smsgateway webhook: could not release event %s after a failure", signed.event.id)


@router.post(SMSGATEWAY_WEBHOOK_PATH, status_code=200, openapi_extra=GATEWAY_BODY_DOC, response_class=Response)
def smsgateway_event(
    signed: Annotated[SignedEvent, Depends(gateway_event)], session: SessionDep, settings: SettingsDep
) -> Response:
    """Take one signed event from the SIM gateway: an SMS to the phone (stored once, its command acted on, the
    answer queued back through the gateway in the sender's language) or the delivery state of a message we sent.
    A copy of a signed event already taken is refused (403) and changes nothing.

    Raises: Invalid (an event payload without its fields).
    """
    _claim_delivery(settings, signed)
    reply = None
    try:
        event = signed.event
        if event.event == "sms:received":
            reply = service.handle_gateway_sms(
                session,
                sms=parse_received(event),
                author_key=settings.report_author_key,
                public_base_url=settings.public_base_url,
            )
        elif event.event in STATUS_EVENTS:
            callbacks.record_status(session, status=parse_status(event), channels=("smsgateway",))
        session.commit()
    except InvalidEvent as exc:
        _release_delivery(settings, signed)
        raise Invalid(
            f"Event gateway SMS tidak valid / invalid SMS gateway event: {exc}", code="invalid-event"
        ) from exc
    except Exception:
        _release_delivery(settings, signed)
        raise
    if reply is not None:  # the answer itself goes after the commit (its ReplyQueued event)
        kick_enrichment()  # a LAPOR waits for enrichment; a command finds nothing to do
    return Response(status_code=200)

"""Inbound citizen messages (Twilio SMS, Telegram, the SIM gateway): store the raw message as a report first, then
act on the citizen's command."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session
from twilio.twiml.messaging_response import MessagingResponse

from broadcast.db import utcnow
from broadcast.inbound.service import dispatch_command
from broadcast.inbound.types import Sender
from broadcast.reports import commands as report_commands
from broadcast.reports import intake
from broadcast.reports.models import Report
from broadcast.subscribers import service as subscribers
from broadcast.trust import service as trust
from broadcast.trust.models import TrustReply
from channels.base import InboundEvent
from channels.sms import CommandKind, mask_number, parse_command, reply_text, reply_twiml
from channels.smsgateway.inbound import SOURCE as GATEWAY
from channels.smsgateway.inbound import GatewaySms
from channels.telegram.inbound import TelegramMessage, reply_in
from channels.whatsapp.inbound import WhatsAppMessage, session_open, stored_form

log = logging.getLogger(__name__)

# Commands Twilio Advanced Opt-Out answers itself; we still act on them, but reply with an empty <Response/>.
OPT_OUT_KINDS = frozenset({CommandKind.STOP, CommandKind.START, CommandKind.HELP})


def _sms_sender(author_key: bytes, number: str) -> tuple[str | None, str]:
    """An SMS sender's E.164 number (None when it is not a phone number: an operator's name, a short code) and
    their author hash."""
    phone: str | None
    try:
        phone = subscribers.normalise_phone(number)
    except subscribers.InvalidPhone:
        phone = None
    return phone, intake.author_hash(author_key, phone or number)


def handle_inbound_sms(
    session: Session, *, event: InboundEvent, author_key: bytes, advanced_opt_out: bool, public_base_url: str = ""
) -> str:
    """Store an inbound SMS as a report (once per MessageSid), act on its command, return the TwiML reply.

    A retried webhook changes nothing and gets the reply the first delivery got.
    """
    phone, author = _sms_sender(author_key, event.sender)
    report, created = intake.store_inbound(
        session, source="sms", external_id=event.external_id, raw=event.raw, author=author
    )
    if not created and report.reply is not None:
        return report.reply
    if phone is None:
        log.info("inbound SMS %s from an unparseable sender %s", event.external_id, mask_number(event.sender))
    sender = Sender(channel="sms", author=author, phone=phone)
    name, context = dispatch_command(
        session, report=report, sender=sender, text=event.text, public_base_url=public_base_url
    )
    if advanced_opt_out and sender.reachable and parse_command(event.text).kind in OPT_OUT_KINDS:
        name = None
    report.reply = reply_twiml(name, **context)
    session.flush()
    log.info("inbound SMS %s (report %s): %s", event.external_id, report.id, report.command or "report")
    return report.reply


def handle_telegram_update(
    session: Session,
    *,
    message: TelegramMessage,
    raw: Mapping[str, object],
    author_key: bytes,
    public_base_url: str,
    location_window_s: float = 0.0,
) -> dict[str, object] | None:
    """Store a Telegram message as a report (once per update_id), act on its command and return the reply as a
    Bot API call for the webhook answer; None for a replayed update (nothing is done twice).

    Telegram clients send a shared location as a message of its own: within `location_window_s`, a location
    after a /lapor places that report, and one before it places the next /lapor (see reports.commands)."""
    author = intake.author_hash(author_key, f"telegram:{message.chat_id}")
    report, created = intake.store_inbound(
        session, source="telegram", external_id=str(message.update_id), raw=raw, author=author
    )
    if not created:
        return None
    sender = Sender(
        channel="telegram",
        author=author,
        telegram_chat_id=message.chat_id,
        location=message.location,
        location_window_s=location_window_s,
    )
    placed = (
        report_commands.place_held_report(session, message=report, sender=sender) if message.location_only else None
    )
    name, context = placed or dispatch_command(
        session, report=report, sender=sender, text=message.text, public_base_url=public_base_url
    )
    # The language of their Telegram app when it says, else the language of the keyword they used.
    language = message.language or parse_command(message.text).language
    text = reply_in(language, reply_text(name, **context)) if name is not None else ""
    report.reply = text
    session.flush()
    log.info("inbound Telegram update %s (report %s): %s", message.update_id, report.id, report.command or "report")
    return {"method": "sendMessage", "chat_id": message.chat_id, "text": text} if text else None


def handle_gateway_sms(
    session: Session, *, sms: GatewaySms, author_key: bytes, public_base_url: str
) -> TrustReply | None:
    """Store an SMS the gateway phone received as a report (once per event id), act on its command and queue the
    answer, in the sender's language, to go back through the gateway. None for a second delivery of the same
    event (nothing is done twice) or a sender we cannot answer (no mobile number)."""
    phone, author = _sms_sender(author_key, sms.phone)
    report, created = intake.store_inbound(
        session, source=GATEWAY, external_id=sms.event_id, raw=sms.raw, author=author
    )
    if not created:
        return None
    sender = Sender(channel=GATEWAY, author=author, phone=phone, location=sms.location)
    name, context = dispatch_command(
        session, report=report, sender=sender, text=sms.text, public_base_url=public_base_url
    )
    # The language of the keyword they used ("daftar" → Indonesian, "register" → English).
    language = parse_command(sms.text).language
    text = reply_in(language, reply_text(name, **context)) if name is not None else ""
    report.reply = text
    session.flush()
    log.info("inbound gateway SMS %s (report %s): %s", sms.event_id, report.id, report.command or "report")
    if not text or phone is None:
        return None
    return trust.queue_answer(session, report=report, channel=GATEWAY, phone=phone, language=language, text=text)


def last_whatsapp_message_at(session: Session, *, author: str) -> datetime | None:
    """When the person with this author hash last wrote to our WhatsApp sender (their 24-hour session window
    opens then): the newest stored WhatsApp message of theirs, or None."""
    return session.scalar(
        select(Report.received_at)
        .where(Report.source == "whatsapp", Report.author_hash == author)
        .order_by(Report.received_at.desc())
        .limit(1)
    )


def handle_inbound_whatsapp(
    session: Session,
    *,
    message: WhatsAppMessage,
    form: Mapping[str, str],
    author_key: bytes,
    public_base_url: str,
    now: datetime | None = None,
) -> str:
    """Store an inbound WhatsApp message as a report (once per MessageSid; number, WhatsApp id and profile name
    only as the keyed hash), act on its command and return the TwiML reply in the sender's language.

    A reply is free-form, so it goes only inside the 24-hour session window the person's last message opened; a
    replayed webhook changes nothing and gets the first answer while that window is open, then none."""
    now = now or utcnow()
    phone, author = _sms_sender(author_key, message.phone)
    report, created = intake.store_inbound(
        session, source="whatsapp", external_id=message.sid, raw=stored_form(form, author=author), author=author
    )
    if not created:
        last = last_whatsapp_message_at(session, author=author)
        return report.reply if report.reply is not None and session_open(last, now=now) else reply_twiml(None)
    if phone is None:
        log.info("inbound WhatsApp %s from an unparseable sender %s", message.sid, mask_number(message.phone))
    sender = Sender(channel="whatsapp", author=author, phone=phone, location=message.location)
    name, context = dispatch_command(
        session, report=report, sender=sender, text=message.text, public_base_url=public_base_url
    )
    language = parse_command(message.text).language
    text = reply_in(language, reply_text(name, **context)) if name is not None else ""
    open_now = session_open(last_whatsapp_message_at(session, author=author), now=now)
    response = MessagingResponse()
    if text and open_now:
        response.message(text)
    report.reply = str(response)
    session.flush()
    log.info("inbound WhatsApp %s (report %s): %s", message.sid, report.id, report.command or "report")
    return report.reply

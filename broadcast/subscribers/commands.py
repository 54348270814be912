"""Citizen commands the subscriber domain answers: DAFTAR (and a numbered choice), YA, BERHENTI/STOP, MULAI."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy.orm import Session

from broadcast.db import utcnow
from broadcast.dispatch import callbacks
from broadcast.inbound.types import CommandContext, Reply, Sender
from broadcast.reports import intake
from broadcast.subscribers import consent
from broadcast.subscribers import service as subscribers
from broadcast.subscribers.models import Subscriber
from broadcast.trust import service as trust
from channels.sms import CommandKind
from geo import gazetteer
from geo.placenames import Resolution, describe, resolve_place

CHOICE_TTL = timedelta(hours=1)


def find_sender(session: Session, sender: Sender) -> Subscriber | None:
    """The subscriber behind this sender (by Telegram chat or mobile number), or None."""
    if sender.telegram_chat_id is not None:
        return subscribers.find_by_telegram(session, chat_id=sender.telegram_chat_id)
    return subscribers.find_by_phone(session, phone=sender.phone) if sender.phone else None


def register(ctx: CommandContext) -> Reply:
    """DAFTAR <place> (or a shared location): subscribe the sender; several matching places → a numbered list."""
    if not ctx.command.argument and ctx.sender.location is not None:
        code = subscribers.locate_code(*ctx.sender.location)
        place = gazetteer.find_place(code) if code else None
        if place is None:
            return "register_unknown", {"area": "-"}
        return _subscribe(ctx, place=place, language=ctx.command.language)
    match = resolve_place(ctx.command.argument)
    if match.resolution is Resolution.FOUND and match.place is not None:
        return _subscribe(ctx, place=match.place, language=ctx.command.language)
    if match.resolution is Resolution.AMBIGUOUS:
        options = [{"name": _short(p), "code": p.kode} for p in match.options]
        # Remember the numbered list for an hour, so a bare "2" picks the second place.
        intake.set_checkpoint(
            ctx.session,
            name=_choice_key(ctx.sender),
            value=json.dumps([ctx.command.language, *(o["code"] for o in options)]),
        )
        return "register_ambiguous", {"area": ctx.command.argument, "options": options}
    return "register_unknown", {"area": ctx.command.argument}


def choose(ctx: CommandContext) -> Reply:
    """A bare number answering the last numbered list of places sent to this sender (within an hour)."""
    pending = intake.find_checkpoint(ctx.session, name=_choice_key(ctx.sender))
    if pending is None or pending.updated_at < utcnow() - CHOICE_TTL:
        return "choice_expired", {}
    language, *codes = json.loads(pending.value)
    index = int(ctx.command.argument) - 1
    place = gazetteer.find_place(codes[index]) if 0 <= index < len(codes) else None
    if place is None:
        return "choice_expired", {}
    ctx.report.command = CommandKind.REGISTER.value
    pending.value = json.dumps([language])  # answered: a second "1" does not register again
    return _subscribe(ctx, place=place, language=language)


def confirm(ctx: CommandContext) -> Reply:
    """YA: consent to the registration a staff user asked for this number (the confirmation SMS we sent it).
    Consent is asked and given by SMS only: from any other channel there is nothing to confirm."""
    if ctx.sender.phone is None:
        return "consent_none", {}
    return consent.confirm(ctx.session, phone=ctx.sender.phone)


def stop(ctx: CommandContext) -> Reply:
    """BERHENTI/STOP: no message to this sender from now on, pending ones included (and no registration a staff
    user asked for this number waits for their YA any more)."""
    trust.forget_contact(ctx.session, author=ctx.sender.author)
    if ctx.sender.phone is not None:
        consent.withdraw(ctx.session, phone=ctx.sender.phone)
    sub = find_sender(ctx.session, ctx.sender)
    reason = subscribers.STOP_SMS if ctx.sender.channel == "sms" else f"{ctx.sender.channel}-stop"
    if sub is not None and subscribers.stop_subscriber(ctx.session, subscriber=sub, reason=reason):
        callbacks.skip_pending_for(
            ctx.session, subscriber_id=sub.id, reason=f"subscriber stopped ({ctx.sender.channel})"
        )
    return "stopped", {}


def start(ctx: CommandContext) -> Reply:
    """MULAI/START: alerts again for a stopped subscriber; a stranger is asked to register."""
    sub = find_sender(ctx.session, ctx.sender)
    if sub is None:
        return "register_missing", {}
    subscribers.start_subscriber(ctx.session, subscriber=sub)
    return "started", {}


def _choice_key(sender: Sender) -> str:
    return f"{sender.channel}-choice:{sender.author}"


def _subscribe(ctx: CommandContext, *, place: gazetteer.Place, language: str) -> Reply:
    try:
        if ctx.sender.telegram_chat_id is not None:
            sub, _ = subscribers.register_by_telegram(
                ctx.session, chat_id=ctx.sender.telegram_chat_id, admin_code=place.kode, language=language
            )
        elif ctx.sender.phone is not None:
            sub, _ = subscribers.register_by_sms(
                ctx.session,
                phone=ctx.sender.phone,
                admin_code=place.kode,
                language=language,
                channel=ctx.sender.channel,
            )
        else:
            return "register_not_mobile", {}
    except subscribers.InvalidPhone:  # a foreign or non-mobile sender: alerts go to Indonesian mobiles only
        return "register_not_mobile", {}
    ctx.report.admin_code = sub.admin_code
    return "registered", {"area": describe(place)}


def _short(place: gazetteer.Place) -> str:
    parent = gazetteer.find_place(place.kode_induk) if place.kode_induk else None
    return f"{place.nama}, {parent.nama}" if parent is not None and parent.level != "provinsi" else place.nama

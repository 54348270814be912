"""Inbound SMS use case: store the raw message as a report first, then act on the citizen's command."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

from sqlalchemy.orm import Session

from broadcast.alerts import service as alerts
from broadcast.db import utcnow
from broadcast.dispatch import callbacks
from broadcast.reports import service as reports
from broadcast.reports.models import Report
from broadcast.subscribers import consent
from broadcast.subscribers import service as subscribers
from broadcast.subscribers.models import Subscriber
from broadcast.trust import service as trust
from broadcast.trust import verify
from channels.base import InboundEvent
from channels.sms import Command, CommandKind, mask_number, parse_command, reply_for, reply_twiml
from geo import gazetteer
from geo.placenames import Resolution, describe, resolve_place

log = logging.getLogger(__name__)

# Commands Twilio Advanced Opt-Out answers itself; we still act on them, but reply with an empty <Response/>.
OPT_OUT_KINDS = frozenset({CommandKind.STOP, CommandKind.START, CommandKind.HELP})


CHOICE_TTL = timedelta(hours=1)


def handle_inbound_sms(
    session: Session, *, event: InboundEvent, author_key: bytes, advanced_opt_out: bool, public_base_url: str = ""
) -> str:
    """Store an inbound SMS as a report (once per MessageSid), act on its command, return the TwiML reply.

    A retried webhook changes nothing and gets the reply the first delivery got.
    """
    phone: str | None
    try:
        phone = subscribers.normalise_phone(event.sender)
    except subscribers.InvalidPhone:
        phone = None
    author = reports.author_hash(author_key, phone or event.sender)
    report, created = reports.store_inbound(
        session, source="sms", external_id=event.external_id, raw=event.raw, author=author
    )
    if not created and report.reply is not None:
        return report.reply
    command = parse_command(event.text)
    report.language = command.language
    report.text = event.text.strip()
    if phone is None and command.kind is not CommandKind.REPORT:
        # Not a number we can subscribe or stop (a short code, an alphanumeric sender): keep it as a report.
        log.warning(
            "inbound SMS %s from an unparseable sender %s kept as a report", report.id, mask_number(event.sender)
        )
        command = Command(CommandKind.REPORT, report.text, command.language)
    name, context = _act(
        session, report=report, command=command, phone=phone, author=author, public_base_url=public_base_url
    )
    if advanced_opt_out and command.kind in OPT_OUT_KINDS:
        name = None
    report.reply = reply_twiml(name, **context)
    session.flush()
    log.info("inbound SMS %s (report %s): %s", event.external_id, report.id, report.command or "report")
    return report.reply


def _act(
    session: Session, *, report: Report, command: Command, phone: str | None, author: str, public_base_url: str
) -> tuple[str | None, dict[str, object]]:
    fixed = reply_for(command)
    if command.kind is CommandKind.REPORT:
        if fixed is not None:
            report.state = "dismissed"
            report.processing = "skipped"  # an empty LAPOR: nothing to enrich
            return fixed, {}
        if phone is not None:
            trust.remember_contact(session, author=author, phone=phone, language=command.language)
        return _report(session, report=report, command=command, phone=phone)
    report.command = command.kind.value
    report.state = "actioned"
    report.processing = "skipped"  # a command, not a report: never enriched or shown on the map
    if fixed is not None:
        return fixed, {}
    if command.kind is CommandKind.CHECK:
        return _check(session, code=command.argument, public_base_url=public_base_url)
    if command.kind is CommandKind.HOAX:
        try:
            hoax = trust.store_hoax(
                session,
                source="sms",
                external_id=report.external_id,
                text=command.argument,
                language=command.language,
                author=author,
            )
        except trust.HoaxLimited:
            return "hoax_limited", {"limit": trust.HOAX_PER_AUTHOR_PER_HOUR}
        if phone is not None:
            trust.remember_contact(session, author=author, phone=phone, language=command.language)
        return "hoax_received", {"reference": hoax.id}
    assert phone is not None
    if command.kind is CommandKind.REGISTER:
        return _register(session, report=report, command=command, phone=phone, author=author)
    if command.kind is CommandKind.CHOICE:
        return _choose(session, report=report, command=command, phone=phone, author=author)
    if command.kind is CommandKind.CONFIRM:
        return consent.confirm(session, phone=phone)
    sub = subscribers.find_by_phone(session, phone=phone)
    if command.kind is CommandKind.INFO:
        return _info(session, command=command, sub=sub, public_base_url=public_base_url)
    if command.kind is CommandKind.STOP:
        trust.forget_contact(session, author=author)
        consent.withdraw(session, phone=phone)
        if sub is not None and subscribers.stop_subscriber(session, subscriber=sub, reason=subscribers.STOP_SMS):
            callbacks.skip_pending_for(session, subscriber_id=sub.id, reason="subscriber stopped (sms)")
        return "stopped", {}
    if command.kind is CommandKind.START:
        if sub is None:
            return "register_missing", {}
        subscribers.start_subscriber(session, subscriber=sub)
        return "started", {}
    return "help", {}


def _register(
    session: Session, *, report: Report, command: Command, phone: str, author: str
) -> tuple[str | None, dict[str, object]]:
    match = resolve_place(command.argument)
    if match.resolution is Resolution.FOUND and match.place is not None:
        return _subscribe(session, report=report, place=match.place, phone=phone, language=command.language)
    if match.resolution is Resolution.AMBIGUOUS:
        options = [{"name": _short(p), "code": p.kode} for p in match.options]
        # Remember the numbered list for an hour, so a bare "2" picks the second place.
        reports.set_checkpoint(
            session, name=f"sms-choice:{author}", value=json.dumps([command.language, *(o["code"] for o in options)])
        )
        return "register_ambiguous", {"area": command.argument, "options": options}
    return "register_unknown", {"area": command.argument}


def _subscribe(
    session: Session, *, report: Report, place: gazetteer.Place, phone: str, language: str
) -> tuple[str | None, dict[str, object]]:
    try:
        sub, _ = subscribers.register_by_sms(session, phone=phone, admin_code=place.kode, language=language)
    except subscribers.InvalidPhone:  # a foreign or non-mobile sender: alerts go to Indonesian mobiles only
        return "register_not_mobile", {}
    report.admin_code = sub.admin_code
    return "registered", {"area": describe(place)}


def _choose(
    session: Session, *, report: Report, command: Command, phone: str, author: str
) -> tuple[str | None, dict[str, object]]:
    """A bare number answering the last numbered list of places sent to this sender (within an hour)."""
    pending = reports.find_checkpoint(session, name=f"sms-choice:{author}")
    if pending is None or pending.updated_at < utcnow() - CHOICE_TTL:
        return "choice_expired", {}
    language, *codes = json.loads(pending.value)
    index = int(command.argument) - 1
    place = gazetteer.find_place(codes[index]) if 0 <= index < len(codes) else None
    if place is None:
        return "choice_expired", {}
    report.command = CommandKind.REGISTER.value
    pending.value = json.dumps([language])  # answered: a second "1" does not register again
    return _subscribe(session, report=report, place=place, phone=phone, language=language)


def _info(
    session: Session, *, command: Command, sub: Subscriber | None, public_base_url: str
) -> tuple[str | None, dict[str, object]]:
    """The current alerts for the place they name, or else the place they registered for."""
    place = None
    if command.argument:
        match = resolve_place(command.argument)
        place = match.place if match.resolution is Resolution.FOUND else None
        if place is None:
            return "register_unknown", {"area": command.argument}
    elif sub is not None and sub.admin_code is not None:
        place = gazetteer.find_place(sub.admin_code)
    if place is None:
        return "info_none", {"area": "-", "registered": False}
    current = alerts.current_for_area(session, code=place.kode, limit=3)
    if not current:
        return "info_none", {"area": describe(place), "registered": sub is not None}
    items = [{"headline": a.infos[0].headline, "link": alerts.short_url(public_base_url, a.id)} for a in current]
    return "info", {"area": describe(place), "alerts": items}


def _check(session: Session, *, code: str, public_base_url: str) -> tuple[str | None, dict[str, object]]:
    """CEK <kode>: the alert's state and headline, or a clear "not official" for an unknown code."""
    found = verify.find_by_code(session, code=code, public_base_url=public_base_url, with_texts=False)
    if found is None:
        return "check_unknown", {"code": code.upper()[:12]}
    follow = found.follow_up
    return "check", {
        "label_id": found.state.label_id,
        "label_en": found.state.label_en,
        "headline": found.headline,
        "mark": found.mark,
        "link": alerts.short_url(public_base_url, found.alert.id),
        "follow_link": alerts.short_url(public_base_url, follow.id) if follow is not None else "",
    }


def _short(place: gazetteer.Place) -> str:
    parent = gazetteer.find_place(place.kode_induk) if place.kode_induk else None
    return f"{place.nama}, {parent.nama}" if parent is not None and parent.level != "provinsi" else place.nama


def _report(
    session: Session, *, report: Report, command: Command, phone: str | None
) -> tuple[str | None, dict[str, object]]:
    report.text = command.argument
    report.state = "new"
    sub: Subscriber | None = subscribers.find_by_phone(session, phone=phone) if phone else None
    if sub is not None:
        report.admin_code = sub.admin_code  # where they registered: the location hint until geoparsing
    return "report_received", {"reference": report.id}

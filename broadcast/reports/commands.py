"""The citizen command the reports domain answers: LAPOR <text> (and any message that is no command), and a
location shared on its own message, which places the sender's report next to it."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from broadcast.db import utcnow
from broadcast.inbound.types import CommandContext, Reply, Sender
from broadcast.reports import intake
from broadcast.reports.models import AWAITING_LOCATION, Report
from broadcast.subscribers.commands import find_sender
from broadcast.trust import service as trust
from channels.sms import reply_for


def report(ctx: CommandContext) -> Reply:
    """Keep the message as a new report (placed at a shared location, else where the sender registered); an
    empty LAPOR is dismissed with a hint. On a channel that sends locations as messages of their own, a location
    shared within the window before places the report; without one the report waits that long for it."""
    fixed = reply_for(ctx.command)
    if fixed is not None:
        ctx.report.state = "dismissed"
        ctx.report.processing = "skipped"  # an empty LAPOR: nothing to enrich
        return fixed, {}
    if ctx.sender.phone is not None:
        trust.remember_contact(
            ctx.session, author=ctx.sender.author, phone=ctx.sender.phone, language=ctx.command.language
        )
    ctx.report.text = ctx.command.argument
    ctx.report.state = "new"
    location = ctx.sender.location or _take_shared_location(ctx.session, sender=ctx.sender)
    if location is not None:  # a shared location places the report by its coordinates
        ctx.report.lon, ctx.report.lat = location
    sub = find_sender(ctx.session, ctx.sender)
    if sub is not None:
        ctx.report.admin_code = sub.admin_code  # where they registered: the location hint until geoparsing
    if location is None and ctx.sender.location_window_s > 0:
        # Held (not enriched) until their location arrives or the window passes: enriched once, by coordinates.
        ctx.report.processing = AWAITING_LOCATION
        ctx.report.lease_until = utcnow() + timedelta(seconds=ctx.sender.location_window_s)
        return "report_send_location", {"reference": ctx.report.id}
    return "report_received", {"reference": ctx.report.id}


def place_held_report(session: Session, *, message: Report, sender: Sender) -> Reply | None:
    """A location shared on its own (`message`, already stored): it places the sender's report still waiting
    for it and that report goes on to enrichment; the reply, or None when no report waits (the location is then
    kept for a report sent within the window, and the caller handles the message as usual).

    Raises: ValueError when the sender shared no location.
    """
    if sender.location is None:
        raise ValueError("no shared location")
    held = session.scalars(
        select(Report)
        .where(
            Report.processing == AWAITING_LOCATION,
            Report.lease_until > utcnow(),
            Report.source == message.source,
            Report.author_hash == sender.author,
            Report.id != message.id,
        )
        .order_by(Report.id.desc())
        .limit(1)
        .with_for_update()
    ).first()
    if held is None:
        if sender.location_window_s > 0:
            key = _location_key(sender)
            intake.set_checkpoint(session, name=key, value=json.dumps(list(sender.location)))
            kept = intake.find_checkpoint(session, name=key)
            if kept is not None:
                kept.updated_at = utcnow()  # the window starts now, even when the same place is shared again
        return None
    held.lon, held.lat = sender.location
    held.processing, held.lease_until = "pending", None
    message.command, message.state, message.processing = "location", "actioned", "skipped"
    session.flush()
    return "report_located", {"reference": held.id}


def _take_shared_location(session: Session, *, sender: Sender) -> tuple[float, float] | None:
    """The location this sender shared on its own within the window before, used once."""
    if sender.location_window_s <= 0:
        return None
    row = intake.find_checkpoint(session, name=_location_key(sender))
    if row is None:
        return None
    fresh = row.updated_at >= utcnow() - timedelta(seconds=sender.location_window_s)
    lon, lat = json.loads(row.value)
    session.delete(row)
    session.flush()
    return (float(lon), float(lat)) if fresh else None


def _location_key(sender: Sender) -> str:
    return f"{sender.channel}-location:{sender.author}"

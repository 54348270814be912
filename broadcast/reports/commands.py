"""The citizen command the reports domain answers: LAPOR <text> (and any message that is no command)."""

from __future__ import annotations

from broadcast.inbound.types import CommandContext, Reply
from broadcast.subscribers.commands import find_sender
from broadcast.trust import service as trust
from channels.sms import reply_for


def report(ctx: CommandContext) -> Reply:
    """Keep the message as a new report (placed at a shared location, else where the sender registered); an
    empty LAPOR is dismissed with a hint."""
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
    if ctx.sender.location is not None:  # a shared location places the report by its coordinates
        ctx.report.lon, ctx.report.lat = ctx.sender.location
    sub = find_sender(ctx.session, ctx.sender)
    if sub is not None:
        ctx.report.admin_code = sub.admin_code  # where they registered: the location hint until geoparsing
    return "report_received", {"reference": ctx.report.id}

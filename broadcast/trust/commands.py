"""Citizen commands the trust domain answers: CEK <kode> and HOAKS <text>."""

from __future__ import annotations

from broadcast.alerts import service as alerts
from broadcast.inbound.types import CommandContext, Reply
from broadcast.trust import service as trust
from broadcast.trust import verify


def check(ctx: CommandContext) -> Reply:
    """CEK <kode>: the alert's state and headline, or a clear "not official" for an unknown code."""
    code, base = ctx.command.argument, ctx.public_base_url
    found = verify.find_by_code(ctx.session, code=code, public_base_url=base, with_texts=False)
    if found is None:
        return "check_unknown", {"code": code.upper()[:12]}
    follow = found.follow_up
    return "check", {
        "label_id": found.state.label_id,
        "label_en": found.state.label_en,
        "headline": found.headline,
        "mark": found.mark,
        "link": alerts.short_url(base, found.alert.id),
        "follow_link": alerts.short_url(base, follow.id) if follow is not None else "",
    }


def hoax(ctx: CommandContext) -> Reply:
    """HOAKS <text>: a suspected fake message, queued for review (limited per sender and hour)."""
    try:
        stored = trust.store_hoax(
            ctx.session,
            source=ctx.sender.channel,
            external_id=ctx.report.external_id,
            text=ctx.command.argument,
            language=ctx.command.language,
            author=ctx.sender.author,
        )
    except trust.HoaxLimited:
        return "hoax_limited", {"limit": trust.HOAX_PER_AUTHOR_PER_HOUR}
    if ctx.sender.phone is not None:
        trust.remember_contact(
            ctx.session, author=ctx.sender.author, phone=ctx.sender.phone, language=ctx.command.language
        )
    return "hoax_received", {"reference": stored.id}

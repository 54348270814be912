"""The citizen command the alerts domain answers: INFO [place], the alerts current there."""

from __future__ import annotations

from broadcast.alerts import service as alerts
from broadcast.inbound.types import CommandContext, Reply
from broadcast.subscribers.commands import find_sender
from geo import gazetteer
from geo.placenames import Resolution, describe, resolve_place


def info(ctx: CommandContext) -> Reply:
    """The current alerts for the place they name, or else the place they registered for."""
    sub = find_sender(ctx.session, ctx.sender)
    place = None
    if ctx.command.argument:
        match = resolve_place(ctx.command.argument)
        place = match.place if match.resolution is Resolution.FOUND else None
        if place is None:
            return "register_unknown", {"area": ctx.command.argument}
    elif sub is not None and sub.admin_code:
        place = gazetteer.find_place(sub.admin_code)
    if place is None:
        return "info_none", {"area": "-", "registered": False}
    current = alerts.current_for_area(ctx.session, code=place.kode, limit=3)
    if not current:
        return "info_none", {"area": describe(place), "registered": sub is not None}
    items = [{"headline": a.infos[0].headline, "link": alerts.short_url(ctx.public_base_url, a.id)} for a in current]
    return "info", {"area": describe(place), "alerts": items}

"""Handling one inbound citizen message on any channel: store it raw, parse, dispatch through the table."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from broadcast.inbound.table import COMMANDS
from broadcast.inbound.types import CommandContext, Reply, Sender
from broadcast.reports.models import Report
from channels.sms import Command, CommandKind, parse_command, reply_for

log = logging.getLogger(__name__)


def dispatch_command(session: Session, *, report: Report, sender: Sender, text: str, public_base_url: str) -> Reply:
    """Parse `text` (already stored as `report`), run its command's handler and return the reply to send.

    A message from a sender we cannot reach (no mobile number, no chat) is kept as a report whatever it says.
    """
    command = parse_command(text)
    report.language = command.language
    report.text = text.strip()
    if not sender.reachable and command.kind is not CommandKind.REPORT:
        log.warning("inbound %s message %s from an unreachable sender kept as a report", sender.channel, report.id)
        command = Command(CommandKind.REPORT, report.text, command.language)
    if command.kind is not CommandKind.REPORT:
        report.command = command.kind.value
        report.state = "actioned"
        report.processing = "skipped"  # a command, not a report: never enriched or shown on the map
        fixed = reply_for(command)
        located = command.kind is CommandKind.REGISTER and sender.location is not None  # DAFTAR by shared location
        if fixed is not None and not located:
            return fixed, {}
    ctx = CommandContext(
        session=session, report=report, command=command, sender=sender, public_base_url=public_base_url
    )
    return COMMANDS[command.kind](ctx)

"""Each citizen command kind and the domain handler that answers it: one row per command, for every channel."""

from __future__ import annotations

from broadcast.alerts import commands as alert_commands
from broadcast.inbound.types import CommandContext, Handler, Reply
from broadcast.reports import commands as report_commands
from broadcast.subscribers import commands as subscriber_commands
from broadcast.trust import commands as trust_commands
from channels.sms import CommandKind


def _help(ctx: CommandContext) -> Reply:
    return "help", {}


COMMANDS: dict[CommandKind, Handler] = {
    CommandKind.REPORT: report_commands.report,
    CommandKind.REGISTER: subscriber_commands.register,
    CommandKind.CHOICE: subscriber_commands.choose,
    CommandKind.CONFIRM: subscriber_commands.confirm,
    CommandKind.STOP: subscriber_commands.stop,
    CommandKind.START: subscriber_commands.start,
    CommandKind.INFO: alert_commands.info,
    CommandKind.CHECK: trust_commands.check,
    CommandKind.HOAX: trust_commands.hoax,
    CommandKind.HELP: _help,
}

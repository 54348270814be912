"""Citizen SMS commands (Bahasa Indonesia and English) and the TwiML replies to them.

Pure code: the route decides what a command does (register, stop, store a report) and picks the reply.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from enum import StrEnum

import regex
from twilio.twiml.messaging_response import MessagingResponse

from templates import message_env


class CommandKind(StrEnum):
    REGISTER = "register"
    STOP = "stop"
    START = "start"
    HELP = "help"
    INFO = "info"
    CHOICE = "choice"  # a bare number answering a numbered list we sent
    REPORT = "report"
    CHECK = "check"  # CEK <kode>: is a message with this verification code official?
    HOAX = "hoax"  # HOAKS <text>: a suspected fake message forwarded to us
    CONFIRM = "confirm"  # YA: consent to a registration a staff user asked for (a confirmation SMS we sent)


# Keyword -> (kind, language of the keyword). STOP/START/HELP also carry Twilio's own opt-out keywords:
# when Twilio honours one, our subscriber table must agree or every later send fails with 21610.
KEYWORDS: dict[str, tuple[CommandKind, str]] = {
    "daftar": (CommandKind.REGISTER, "id"),
    "reg": (CommandKind.REGISTER, "en"),
    "register": (CommandKind.REGISTER, "en"),
    "berhenti": (CommandKind.STOP, "id"),
    "stop": (CommandKind.STOP, "en"),
    "unsubscribe": (CommandKind.STOP, "en"),
    "stopall": (CommandKind.STOP, "en"),
    "cancel": (CommandKind.STOP, "en"),
    "end": (CommandKind.STOP, "en"),
    "quit": (CommandKind.STOP, "en"),
    "optout": (CommandKind.STOP, "en"),
    "revoke": (CommandKind.STOP, "en"),
    "mulai": (CommandKind.START, "id"),
    "start": (CommandKind.START, "en"),
    "unstop": (CommandKind.START, "en"),
    "yes": (CommandKind.START, "en"),
    "bantuan": (CommandKind.HELP, "id"),
    "help": (CommandKind.HELP, "en"),
    "info": (CommandKind.INFO, "en"),
    "informasi": (CommandKind.INFO, "id"),
    "lapor": (CommandKind.REPORT, "id"),
    "report": (CommandKind.REPORT, "en"),
    "cek": (CommandKind.CHECK, "id"),
    "check": (CommandKind.CHECK, "en"),
    "hoaks": (CommandKind.HOAX, "id"),
    "hoax": (CommandKind.HOAX, "en"),
    "ya": (CommandKind.CONFIRM, "id"),
}
# Like Twilio, treat these only as the whole message: "stop banjir di jalan" is a report, not an opt-out.
_ALONE_ONLY = frozenset({CommandKind.STOP, CommandKind.START, CommandKind.HELP, CommandKind.CONFIRM})
# Commands whose argument is the citizen's own text, kept with its punctuation.
_FREE_TEXT = frozenset({CommandKind.REPORT, CommandKind.HOAX})
_HEAD = regex.compile(r"^[\p{P}\p{S}\s]*(?P<kw>\p{L}+)(?P<rest>.*)$", regex.DOTALL)
_EDGE_PUNCT = " \t\r\n.,;:!?-_/#*\"'()[]"


@dataclass(frozen=True, slots=True)
class Command:
    """A parsed citizen SMS: what they asked for, its argument (area or report text) and their language."""

    kind: CommandKind
    argument: str
    language: str  # "id" or "en", from the keyword; "id" when there was none
    keyword: str | None = None


def _clean(text: str) -> str:
    return " ".join(text.split()).strip(_EDGE_PUNCT)


def parse_command(text: str) -> Command:
    """Classify an inbound SMS body; anything that is not a command is a report of the whole text.

    Tolerates case, extra spaces, full-width characters and punctuation around the keyword
    ("daftar: Palu Barat", "#LAPOR banjir", "Stop!"). An empty body asks for help.
    """
    body = unicodedata.normalize("NFKC", text or "")
    whole = " ".join(body.split())
    if not _clean(whole):
        return Command(CommandKind.HELP, "", "id")
    # ASCII only: str.isdigit() is also true of '፩' or '²', which int() refuses.
    if len(_clean(whole)) == 1 and _clean(whole) in "0123456789":
        return Command(CommandKind.CHOICE, _clean(whole), "id")
    match = _HEAD.match(whole)
    if match:
        word = match["kw"].casefold()
        found = KEYWORDS.get(word)
        if found is not None:
            kind, language = found
            rest = match["rest"]
            argument = _report_text(rest) if kind in _FREE_TEXT else _clean(rest)
            if kind in _ALONE_ONLY and argument:
                return Command(CommandKind.REPORT, whole.strip(), "id")
            return Command(kind, argument, language, word)
    return Command(CommandKind.REPORT, whole.strip(), "id")


def _report_text(rest: str) -> str:
    # Keep the citizen's own punctuation inside the report; only the separator after LAPOR goes.
    return rest.lstrip(" \t\r\n.,;:!?-_/#*").strip()


REPLIES = frozenset(
    {
        "registered",
        "register_unknown",
        "register_missing",
        "register_ambiguous",
        "stopped",
        "started",
        "help",
        "report_received",
        "report_send_location",
        "report_located",
        "report_empty",
        "info",
        "info_none",
        "choice_expired",
        "check",
        "check_unknown",
        "check_missing",
        "hoax_received",
        "hoax_empty",
        "hoax_limited",
        "register_not_mobile",
        "consent_confirmed",
        "consent_expired",
        "consent_none",
    }
)


def reply_text(name: str, **context: object) -> str:
    """The plain text of reply `name` (Indonesian first, English second) from templates/messages/sms.

    Raises: KeyError for an unknown reply name.
    """
    if name not in REPLIES:
        raise KeyError(f"unknown SMS reply {name!r}; known: {', '.join(sorted(REPLIES))}")
    template = message_env().get_template(f"sms/reply_{name}.j2")
    return " ".join(template.render(**context).split())


def reply_twiml(name: str | None, **context: object) -> str:
    """TwiML answering an inbound SMS with reply `name`; an empty <Response/> (no reply) when None."""
    response = MessagingResponse()
    if name is not None:
        response.message(reply_text(name, **context))
    return str(response)


def reply_for(command: Command) -> str | None:
    """The reply name a command gets when it needs nothing from the database (help, empty report)."""
    if command.kind is CommandKind.HELP:
        return "help"
    if command.kind is CommandKind.REPORT and not command.argument:
        return "report_empty"
    if command.kind is CommandKind.REGISTER and not command.argument:
        return "register_missing"
    if command.kind is CommandKind.CHECK and not command.argument:
        return "check_missing"
    if command.kind is CommandKind.HOAX and not command.argument:
        return "hoax_empty"
    return None

"""Telegram updates (webhook JSON) as citizen messages: pure parsing, no I/O."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
# The update types parse_update reads; setWebhook asks Telegram for these only.
ALLOWED_UPDATES = ("message",)
# Telegram's own bot commands, as the citizen keyword they stand for.
_ALIASES = {"start": "bantuan", "help": "help"}


@dataclass(frozen=True, slots=True)
class TelegramMessage:
    """One citizen message from a private chat with the bot."""

    update_id: int
    chat_id: int
    text: str  # the command text in the SMS grammar ("lapor banjir", "daftar Palu Barat")
    language: str | None  # "id"/"en" from the user's Telegram language, when given
    location: tuple[float, float] | None = None  # (lon, lat)
    photo_file_id: str | None = None
    location_only: bool = False  # a shared location with no text (Telegram sends it as a message of its own)


def verify_secret(expected: str, given: str | None) -> bool:
    """True when the update carries our webhook secret (constant time); never with no secret configured."""
    return bool(expected) and given is not None and hmac.compare_digest(expected.encode(), given.encode())


def _command_text(raw: str) -> str:
    """ "/lapor@bpbd_bot banjir" → "lapor banjir"; plain text stays as it is."""
    text = raw.strip()
    if not text.startswith("/"):
        return text
    head, _, rest = text[1:].partition(" ")
    word = head.split("@", 1)[0].lower()
    word = _ALIASES.get(word, word)
    return f"{word} {rest}".strip()


def parse_update(update: Mapping[str, Any]) -> TelegramMessage | None:
    """The citizen message in an update, or None for anything else (edits, channel posts, group chats).

    Raises: ValueError when update_id is missing.
    """
    update_id = update.get("update_id")
    if not isinstance(update_id, int):
        raise ValueError("update without an integer update_id")
    message = update.get("message")
    if not isinstance(message, Mapping):
        return None
    chat = message.get("chat")
    if not isinstance(chat, Mapping) or chat.get("type") != "private" or not isinstance(chat.get("id"), int):
        return None
    sender = message.get("from") if isinstance(message.get("from"), Mapping) else {}
    code = str(sender.get("language_code") or "") if isinstance(sender, Mapping) else ""
    language = ("en" if code.startswith("en") else "id") if code else None
    location = message.get("location")
    point = None
    if isinstance(location, Mapping):
        lon, lat = location.get("longitude"), location.get("latitude")
        if isinstance(lon, int | float) and isinstance(lat, int | float) and -180 <= lon <= 180 and -90 <= lat <= 90:
            point = (float(lon), float(lat))
    photos = message.get("photo")
    photo = None
    if isinstance(photos, list) and photos and isinstance(photos[-1], Mapping):
        photo = str(photos[-1].get("file_id") or "") or None
    raw_text = message.get("text") or message.get("caption") or ""
    text = _command_text(str(raw_text))
    alone = not text and point is not None and photo is None
    if alone:
        text = "daftar"  # a bare shared location registers for the place it is in (unless a report waits for it)
    return TelegramMessage(update_id, int(chat["id"]), text, language, point, photo, alone)


def reply_in(language: str, bilingual: str) -> str:
    """The half of a bilingual reply ("Indonesian / English") in `language`."""
    parts = bilingual.rsplit(" / ", 1)
    return parts[-1].strip() if language == "en" and len(parts) == 2 else parts[0].strip()

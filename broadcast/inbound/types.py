"""What an inbound command handler gets (the sender, the stored message, the parsed command) and answers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from broadcast.reports.models import Report
from channels.sms import Command

# A reply: the name of a reply template (None: no reply) and its values.
Reply = tuple[str | None, dict[str, object]]


@dataclass(frozen=True, slots=True)
class Sender:
    """Who sent a command, as far as the channel tells: their keyed hash and an address we can reach them on."""

    channel: str  # "sms", "telegram", …
    author: str  # reports.author_hash of their address
    phone: str | None = None  # E.164, when the channel gives a mobile number
    telegram_chat_id: int | None = None
    location: tuple[float, float] | None = None  # (lon, lat) they shared with the message
    # Channels whose clients send a shared location as a message of its own (Telegram): how long a report
    # waits for it, and a location shared just before a report still places it. 0: locations come with the text.
    location_window_s: float = 0.0

    @property
    def reachable(self) -> bool:
        """True when we can subscribe, stop or answer them (a mobile number or a chat)."""
        return self.phone is not None or self.telegram_chat_id is not None


@dataclass(slots=True)
class CommandContext:
    """One inbound command being handled: the stored raw message (`report`) is already flushed."""

    session: Session
    report: Report
    command: Command
    sender: Sender
    public_base_url: str


Handler = Callable[[CommandContext], Reply]

"""The WhatsApp channel's settings (`BROADCAST_TWILIO__WHATSAPP__*`: the same Twilio account, credentials and
webhook signatures as SMS) and its adapter config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from channels.whatsapp.templates import bodies

# Where Twilio posts inbound WhatsApp messages (status callbacks share the SMS status webhook).
WHATSAPP_INBOUND_PATH = "/webhooks/twilio/whatsapp"
# Twilio's default throughput of one WhatsApp sender (text), in messages per second; more on request.
SENDER_RATE = 10.0
# Meta's messaging tiers: distinct people a business portfolio may start conversations with per 24 h.
TIERS: dict[str, int | None] = {
    "250": 250,
    "1000": 1000,
    "2000": 2000,
    "10000": 10000,
    "100000": 100000,
    "unlimited": None,
}
TIER_WINDOW_S = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class WhatsAppConfig:
    """What the WhatsApp adapter needs, filled from the Twilio settings by the entrypoint."""

    account_sid: str = ""
    auth_token: str = field(default="", repr=False)
    from_number: str = ""  # E.164, without the "whatsapp:" prefix
    messaging_service_sid: str = ""
    content_sids: tuple[tuple[str, str], ...] = ()  # template key → content SID ("banjir.id" → "HX…")
    status_callback_url: str = ""
    max_concurrency: int = 32
    timeout_s: float = 10.0
    account_rate: float = 2000.0  # the Twilio account's cap, shared with SMS
    sender_rate: float = SENDER_RATE
    tier: int | None = 250  # None: unlimited
    tier_key: str = ""  # the business portfolio the tier belongs to
    api_base_url: str = ""  # only to reach a local fake in tests


class WhatsAppSettings(BaseModel):
    """The WhatsApp sender, its approved templates' content SIDs, its throughput and its messaging tier."""

    # The WhatsApp-enabled number (E.164), or a Messaging Service holding WhatsApp senders.
    from_number: str = ""
    messaging_service_sid: str = ""
    # Template key "<hazard>.<language>" (templates/messages/whatsapp/alerts.toml) → Twilio content SID "HX…".
    content_sids: dict[str, str] = {}
    sender_rate: float = Field(default=SENDER_RATE, gt=0)
    # Meta's tier for the business portfolio: distinct people messaged per 24 h (a fresh portfolio has 250).
    tier: Literal["250", "1000", "2000", "10000", "100000", "unlimited"] = "250"
    # Names the portfolio's tier bucket when several senders share it; empty = the sender.
    portfolio: str = ""
    # Empty = the SMS status callback (the same webhook records WhatsApp statuses).
    status_callback_url: str = ""

    @field_validator("from_number")
    @classmethod
    def _e164(cls, value: str) -> str:
        value = value.removeprefix("whatsapp:").strip()
        if value and not (value.startswith("+") and value[1:].isdigit() and 8 <= len(value) <= 16):
            raise ValueError("whatsapp.from_number must be an E.164 number such as +6281100000000")
        return value

    @field_validator("content_sids")
    @classmethod
    def _known_templates(cls, value: dict[str, str]) -> dict[str, str]:
        known = bodies()
        for key, sid in value.items():
            if key not in known:
                raise ValueError(f"whatsapp.content_sids: no template {key!r} in templates/messages/whatsapp")
            if not (sid.startswith("HX") and len(sid) == 34):
                raise ValueError(f"whatsapp.content_sids[{key!r}]: a content SID is HX and 32 hex digits")
        return value

    @property
    def has_sender(self) -> bool:
        """True when messages have a WhatsApp sender (a number or a Messaging Service)."""
        return bool(self.from_number or self.messaging_service_sid)

    @property
    def tier_limit(self) -> int | None:
        """Distinct people per 24 h, or None for an unlimited tier."""
        return TIERS[self.tier]

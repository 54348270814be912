"""The Telegram channels' settings (`BROADCAST_TELEGRAM__*`) and the one place they become the adapter config."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pydantic import BaseModel, Field, SecretStr, field_validator

from channels.spec import LocalFakeUrl

# Telegram's documented limits: about 30 messages/s per bot, 1/s per chat, 20/min per group or channel.
BOT_RATE = 30.0
CHAT_RATE = 1.0
GROUP_PER_MINUTE = 20.0
MAX_TEXT = 4096  # characters of one message after entity parsing
# Our webhook route; `broadcast telegram set-webhook` points Telegram at the public URL plus this path.
TELEGRAM_WEBHOOK_PATH = "/webhooks/telegram"
# What setWebhook accepts as secret_token.
SECRET_TOKEN_PATTERN = r"[A-Za-z0-9_-]{1,256}"  # noqa: S105 - a pattern, not a secret


@dataclass(frozen=True, slots=True)
class TelegramConfig:
    """What the Telegram adapters need, passed in by the entrypoint (adapters never read settings)."""

    bot_token: str = field(default="", repr=False)
    channel_chat_id: str = ""  # "@bpbdpalu" or "-100…": where alerts are posted for every member
    api_base_url: str = ""  # only to reach a local fake Bot API in tests: "http://127.0.0.1:PORT/bot"
    timeout_s: float = 10.0
    bot_rate: float = BOT_RATE
    chat_rate: float = CHAT_RATE
    group_per_minute: float = GROUP_PER_MINUTE


class TelegramSettings(BaseModel):
    """The bot's token, the agency channel and the webhook secret Telegram sends back in every update."""

    bot_token: SecretStr = SecretStr("")
    channel_chat_id: str = ""
    # Given to setWebhook as secret_token; Telegram sends it in X-Telegram-Bot-Api-Secret-Token. Empty: the
    # webhook refuses every update (503), since an unauthenticated update must never be trusted.
    webhook_secret: SecretStr = SecretStr("")
    timeout_s: float = Field(default=10.0, gt=0)
    bot_rate: float = Field(default=BOT_RATE, gt=0)
    chat_rate: float = Field(default=CHAT_RATE, gt=0)
    group_per_minute: float = Field(default=GROUP_PER_MINUTE, gt=0)
    # Telegram clients send a shared location as a message of its own: how long a /lapor waits for it (and how
    # recent a location shared just before a /lapor may be). The report is enriched when it comes, or after this.
    location_window_s: float = Field(default=120.0, gt=0, le=3600)
    # Only to point the channel at a local fake Bot API (benchmarks, tests): loopback URLs only.
    api_base_url: LocalFakeUrl = ""

    @field_validator("webhook_secret")
    @classmethod
    def _telegram_token_characters(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value()
        if secret and not re.fullmatch(SECRET_TOKEN_PATTERN, secret):
            raise ValueError("telegram.webhook_secret: 1-256 characters of A-Z, a-z, 0-9, _ and - (Telegram's rule)")
        return value

    @property
    def configured(self) -> bool:
        """True when there is a bot token to send with."""
        return bool(self.bot_token.get_secret_value())

    def webhook_url(self, public_base_url: str) -> str:
        """The URL Telegram should post updates to: our public address plus the webhook route."""
        return public_base_url.rstrip("/") + TELEGRAM_WEBHOOK_PATH

    def to_config(self) -> TelegramConfig:
        """These settings as the adapter config."""
        return TelegramConfig(
            bot_token=self.bot_token.get_secret_value(),
            channel_chat_id=self.channel_chat_id,
            api_base_url=self.api_base_url,
            timeout_s=self.timeout_s,
            bot_rate=self.bot_rate,
            chat_rate=self.chat_rate,
            group_per_minute=self.group_per_minute,
        )

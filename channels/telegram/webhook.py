"""Registering our webhook with Telegram through python-telegram-bot: setWebhook (URL, secret token, the update
types we handle), deleteWebhook and getWebhookInfo. Used by `broadcast telegram …`; never retries by itself."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from telegram import Bot, WebhookInfo
from telegram.error import InvalidToken, NetworkError, TelegramError

from channels.base import ChannelError
from channels.telegram.inbound import ALLOWED_UPDATES
from channels.telegram.sender import make_bot
from channels.telegram.settings import SECRET_TOKEN_PATTERN, TelegramConfig

T = TypeVar("T")
# Telegram accepts webhooks on these ports only, over HTTPS.
WEBHOOK_PORTS = (443, 80, 88, 8443)


class WebhookError(ChannelError):
    """Telegram refused the call, or could not be reached; the message says which."""


@dataclass(frozen=True, slots=True)
class WebhookState:
    """What Telegram says about our webhook."""

    url: str  # "" when none is set
    pending_updates: int
    allowed_updates: tuple[str, ...]
    max_connections: int | None
    last_error: str | None
    last_error_at: datetime | None


def check_webhook(url: str, secret: str) -> None:
    """Refuse what Telegram would refuse, before calling it: an HTTPS URL on an allowed port, a secret token.

    Raises: ValueError naming the rule.
    """
    match = re.fullmatch(r"https://[^/:]+(?::(\d+))?(/.*)?", url)
    if match is None:
        raise ValueError(f"the webhook URL must be https://host[:port]/path, got {url!r}")
    if match[1] is not None and int(match[1]) not in WEBHOOK_PORTS:
        raise ValueError(f"Telegram only calls webhooks on ports {', '.join(map(str, WEBHOOK_PORTS))}")
    if not re.fullmatch(SECRET_TOKEN_PATTERN, secret):
        raise ValueError("the webhook secret must be 1-256 characters of A-Z, a-z, 0-9, _ and -")


def set_webhook(
    config: TelegramConfig, *, url: str, secret: str, drop_pending: bool = False, max_connections: int = 40
) -> WebhookState:
    """Point Telegram at `url` with our secret token and the update types we handle; Telegram's answer after.

    Raises: ValueError (see check_webhook), WebhookError.
    """
    check_webhook(url, secret)

    async def call(bot: Bot) -> WebhookInfo:
        await bot.set_webhook(
            url=url,
            secret_token=secret,
            allowed_updates=list(ALLOWED_UPDATES),
            drop_pending_updates=drop_pending,
            max_connections=max_connections,
        )
        return await bot.get_webhook_info()

    return _state(_run(config, call))


def delete_webhook(config: TelegramConfig, *, drop_pending: bool = False) -> WebhookState:
    """Stop Telegram calling our webhook (updates then wait at Telegram, up to 24 hours, unless dropped).

    Raises: WebhookError.
    """

    async def call(bot: Bot) -> WebhookInfo:
        await bot.delete_webhook(drop_pending_updates=drop_pending)
        return await bot.get_webhook_info()

    return _state(_run(config, call))


def webhook_info(config: TelegramConfig) -> WebhookState:
    """Where Telegram sends our updates, how many wait, and the last delivery error it saw.

    Raises: WebhookError.
    """

    async def call(bot: Bot) -> WebhookInfo:
        return await bot.get_webhook_info()

    return _state(_run(config, call))


def _run(config: TelegramConfig, call: Callable[[Bot], Awaitable[T]]) -> T:
    if not config.bot_token:
        raise WebhookError("no bot token (BROADCAST_TELEGRAM__BOT_TOKEN)")

    async def session() -> T:
        async with make_bot(config) as bot:
            return await call(bot)

    try:
        return asyncio.run(session())
    except InvalidToken as exc:
        raise WebhookError(f"Telegram refused the bot token: {exc}") from exc
    except NetworkError as exc:  # timeouts, connection errors and 5xx
        raise WebhookError(f"Telegram unreachable: {exc}") from exc
    except TelegramError as exc:
        raise WebhookError(f"Telegram refused the call: {exc}") from exc


def _state(info: WebhookInfo) -> WebhookState:
    return WebhookState(
        url=info.url,
        pending_updates=info.pending_update_count,
        allowed_updates=tuple(info.allowed_updates or ()),
        max_connections=info.max_connections,
        last_error=info.last_error_message,
        last_error_at=info.last_error_date,
    )

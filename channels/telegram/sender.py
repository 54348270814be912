"""Sending through the Telegram Bot API with python-telegram-bot's async Bot (one event loop per batch).

Retries: never itself. 429 (`RetryAfter`), 5xx and network errors are `RETRY` (a 429 carries the seconds
Telegram asked for, which block the bucket for every worker); a timeout is `RETRY` in doubt; 400/403 (bad chat,
the user blocked the bot) are `FAILED`. Limits: the bot's 30/s, each chat's 1/s and each group's or channel's
20/min, kept as the dispatcher's shared Redis buckets.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Sequence

from telegram import Bot, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.request import HTTPXRequest

from channels.base import (
    Channel,
    ChannelLimits,
    OutboundMessage,
    Outcome,
    Proceed,
    RateBucket,
    Renderer,
    SendResult,
    send_one_of_batch,
    while_proceeding,
    window_safe,
    with_stopped,
)
from channels.telegram.settings import TelegramConfig

log = logging.getLogger(__name__)


def make_bot(config: TelegramConfig) -> Bot:
    """python-telegram-bot's Bot for `config`: its timeouts, and the local fake Bot API when one is configured."""
    request = HTTPXRequest(
        connection_pool_size=8,
        read_timeout=config.timeout_s,
        write_timeout=config.timeout_s,
        connect_timeout=config.timeout_s,
        pool_timeout=config.timeout_s,
    )
    if config.api_base_url:
        return Bot(config.bot_token, base_url=config.api_base_url, request=request)
    return Bot(config.bot_token, request=request)


def is_group(chat: str) -> bool:
    """True for a channel or group ("@name" or a negative id), where Telegram allows about 20 messages/min."""
    return chat.startswith(("@", "-"))


class TelegramBot(Channel):
    """The bot sending alert texts (HTML) to chats: subscribers' private chats or the agency's channel."""

    def __init__(self, renderer: Renderer, *, config: TelegramConfig, channel_post: bool = False) -> None:
        """`channel_post`: every message goes to the agency's channel (config.channel_chat_id).

        Raises: ValueError without a bot token, or a channel post without a channel.
        """
        super().__init__(renderer)
        if not config.bot_token:
            raise ValueError("a Telegram bot token is required")
        if channel_post and not config.channel_chat_id:
            raise ValueError("posting to the agency's channel needs telegram.channel_chat_id")
        self.config = config
        self.channel_post = channel_post
        self.limits = ChannelLimits(*window_safe(config.bot_rate), max_batch=100)

    def send(self, message: OutboundMessage) -> str:
        """Send one message.

        Raises: MessageRejected, ChannelUnavailable.
        """
        return send_one_of_batch(self, message)

    def send_many(self, messages: Sequence[OutboundMessage], *, proceed: Proceed | None = None) -> list[SendResult]:
        """Send a batch one message after another on one Bot session; `proceed` is asked before each."""
        return asyncio.run(self._send_all(messages, proceed))

    async def _send_all(self, messages: Sequence[OutboundMessage], proceed: Proceed | None) -> list[SendResult]:
        async with make_bot(self.config) as bot:
            sent = [await self._send_one(bot, m) for m in while_proceeding(messages, proceed)]
        return with_stopped(sent, messages)

    async def _send_one(self, bot: Bot, message: OutboundMessage) -> SendResult:
        chat = self.chat_of(message)
        try:
            sent = await bot.send_message(
                chat_id=chat,
                text=message.text,
                parse_mode=ParseMode.HTML,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
            )
        except RetryAfter as exc:
            with warnings.catch_warnings():  # PTB 22.2+ warns that retry_after becomes a timedelta in v23
                warnings.simplefilter("ignore")
                wait = exc.retry_after
            seconds = wait if isinstance(wait, int | float) else wait.total_seconds()
            return SendResult(message.reference, Outcome.RETRY, error="telegram 429", retry_after=float(seconds))
        except TimedOut as exc:
            return SendResult(message.reference, Outcome.RETRY, error=f"telegram timeout: {exc}", in_doubt=True)
        except (BadRequest, Forbidden) as exc:
            return SendResult(message.reference, Outcome.FAILED, error=f"telegram {type(exc).__name__}: {exc}")
        except NetworkError as exc:  # 5xx and connection errors
            return SendResult(message.reference, Outcome.RETRY, error=f"telegram unavailable: {exc}")
        except TelegramError as exc:
            return SendResult(message.reference, Outcome.FAILED, error=f"telegram {type(exc).__name__}: {exc}")
        return SendResult(message.reference, Outcome.SENT, provider_id=f"{sent.chat.id}:{sent.message_id}")

    def chat_of(self, message: OutboundMessage) -> str:
        """The chat a message goes to: the agency's channel for channel posts, else the recipient's chat."""
        return self.config.channel_chat_id if self.channel_post else message.recipient

    def rate_buckets(self, message: OutboundMessage) -> tuple[list[RateBucket], int]:
        """The bot's bucket plus the chat's (1/s) or, for a group or channel, the group's (20/min)."""
        chat = self.chat_of(message)
        bot = RateBucket("telegram:bot", self.limits.rate_per_second, self.limits.burst)
        if is_group(chat):
            per_s = self.config.group_per_minute / 60.0
            return [bot, RateBucket(f"telegram:group:{chat}", per_s, 1)], 1
        rate, burst = window_safe(self.config.chat_rate)
        return [bot, RateBucket(f"telegram:chat:{chat}", rate, burst)], 1

"""The Telegram channels as the registry sees them: "telegram" (the bot to each subscriber's chat) and
"telegram_channel" (one post to the agency's channel, which reaches every member)."""

from __future__ import annotations

from dataclasses import replace

from channels.base import Audience, Channel, ChannelLimits, Renderer, window_safe
from channels.spec import BuildContext, ChannelConfigError, ChannelSpec, SenderFactory, guarded
from channels.telegram.render import TelegramChannelRenderer, TelegramRenderer
from channels.telegram.sender import TelegramBot
from channels.telegram.settings import BOT_RATE, TelegramConfig, TelegramSettings


def telegram_config(settings: TelegramSettings, ctx: BuildContext) -> TelegramConfig:
    """The adapter config from the Telegram settings."""
    return settings.to_config()


def _renderer(config: object) -> TelegramRenderer:
    return TelegramRenderer()


def _channel_renderer(config: object) -> TelegramChannelRenderer:
    return TelegramChannelRenderer()


def _bot(channel_post: bool) -> SenderFactory:
    def build(config: object, renderer: Renderer, ctx: BuildContext) -> Channel:
        if not isinstance(config, TelegramConfig):
            raise ChannelConfigError("channel 'telegram': live mode needs a bot token")
        return guarded(renderer.name, lambda: TelegramBot(renderer, config=config, channel_post=channel_post))

    return build


def _channel_configured(settings: TelegramSettings) -> bool:
    return settings.configured and bool(settings.channel_chat_id)


_LIMITS = ChannelLimits(*window_safe(BOT_RATE), max_batch=100)
_HINT = "BROADCAST_TELEGRAM__BOT_TOKEN"

TELEGRAM = ChannelSpec(
    name="telegram",
    audience=Audience.SUBSCRIBERS,
    settings_key="telegram",
    settings_model=TelegramSettings,
    config=telegram_config,
    renderer=_renderer,
    sender=_bot(channel_post=False),
    limits=_LIMITS,
    subscriber_address="telegram_chat_id",
    delivery_receipts=False,  # the Bot API answers once the message is in the chat; nothing reports more
    credentials_hint=_HINT,
)

# The same bot and settings, posting once per alert to the agency's channel.
TELEGRAM_CHANNEL = replace(
    TELEGRAM,
    name="telegram_channel",
    audience=Audience.PUBLIC,
    renderer=_channel_renderer,
    sender=_bot(channel_post=True),
    configured=_channel_configured,
    credentials_hint=f"{_HINT} and BROADCAST_TELEGRAM__CHANNEL_CHAT_ID",
)

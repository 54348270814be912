"""The Telegram channels as the registry sees them: "telegram" (the bot to each subscriber's chat) and
"telegram_channel" (one post to the agency's channel, which reaches every member)."""

from __future__ import annotations

from channels.base import Audience, Channel, ChannelLimits, Renderer, window_safe
from channels.spec import BuildContext, ChannelConfigError, ChannelSpec, SenderFactory
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
        try:
            return TelegramBot(renderer, config=config, channel_post=channel_post)
        except ValueError as exc:
            raise ChannelConfigError(f"channel {renderer.name!r}: {exc}") from exc

    return build


def _configured(settings: TelegramSettings) -> bool:
    return settings.configured


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
    configured=_configured,
    limits=_LIMITS,
    subscriber_address="telegram_chat_id",
    delivery_receipts=False,  # the Bot API answers once the message is in the chat; nothing reports more
    credentials_hint=_HINT,
)

TELEGRAM_CHANNEL = ChannelSpec(
    name="telegram_channel",
    audience=Audience.PUBLIC,
    settings_key="telegram",
    settings_model=TelegramSettings,
    config=telegram_config,
    renderer=_channel_renderer,
    sender=_bot(channel_post=True),
    configured=_channel_configured,
    limits=_LIMITS,
    credentials_hint=f"{_HINT} and BROADCAST_TELEGRAM__CHANNEL_CHAT_ID",
)

"""Build the enabled channels from settings: the one place live Twilio and X are configured."""

from __future__ import annotations

from decimal import Decimal

from broadcast.settings import Settings
from channels.base import Channel, Renderer
from channels.registry import build_channels, build_renderers
from channels.sms import SenderStrategy, TwilioConfig
from channels.social import X_BASIC_USER_POSTS_24H, XAccount, XConfig


def twilio_config(settings: Settings) -> TwilioConfig:
    """TwilioSettings as the SMS channel's TwilioConfig; the status callback defaults to our status webhook."""
    t = settings.twilio
    return TwilioConfig(
        account_sid=t.account_sid,
        auth_token=t.auth_token.get_secret_value(),
        messaging_service_sid=t.messaging_service_sid,
        sender_numbers=tuple(t.sender_numbers),
        sender_strategy=SenderStrategy(t.sender_strategy),
        status_callback_url=settings.twilio_status_callback_url,
        max_concurrency=t.max_concurrency,
        timeout_s=t.timeout_s,
        rate_per_second=t.rate_per_second,
        long_code_rate=t.long_code_rate,
        short_code_rate=t.short_code_rate,
        messaging_service_rate=t.messaging_service_rate,
        max_segments=t.max_segments,
        severity_segments=tuple(sorted(t.segments_by_severity.items())),
        price_per_segment=Decimal(t.price_per_segment),
        currency=t.currency,
        api_base_url=t.api_base_url,
    )


def x_config(settings: Settings) -> XConfig | None:
    """XSettings as the X channel's XConfig (national account first, then regional ones); None without accounts."""
    x = settings.x
    accounts: list[XAccount] = []
    if x.access_token:
        accounts.append(
            XAccount(
                code="",
                handle=x.handle,
                user_id=x.user_id,
                access_token=x.access_token,
                access_token_secret=x.access_token_secret.get_secret_value(),
                posts_per_24h=X_BASIC_USER_POSTS_24H,
            )
        )
    for code, account in x.accounts.items():
        accounts.append(
            XAccount(
                code=code,
                handle=account.handle,
                user_id=account.user_id,
                access_token=account.access_token,
                access_token_secret=account.access_token_secret.get_secret_value(),
                posts_per_24h=account.posts_per_24h,
            )
        )
    if not accounts:
        return None
    return XConfig(
        consumer_key=x.consumer_key,
        consumer_secret=x.consumer_secret.get_secret_value(),
        accounts=tuple(accounts),
        bearer_token=x.bearer_token.get_secret_value(),
        app_posts_per_24h=x.app_posts_per_24h,
        timeout_s=x.timeout_s,
    )


def build_active_channels(
    settings: Settings, *, twilio: TwilioConfig | None = None, x: XConfig | None = None
) -> dict[str, Channel]:
    """Every enabled channel: live only in production with credentials, outbox otherwise, always.

    `twilio`/`x` replace the configs derived from settings (tests point them at local fakes).
    Raises: ChannelConfigError when a live channel is misconfigured.
    """
    modes = {n: settings.channel_mode(n) for n in settings.enabled_channels}
    return build_channels(
        settings.enabled_channels,
        modes=modes,
        public_base_url=settings.public_base_url,
        twilio=twilio or twilio_config(settings),
        x_config=x or (x_config(settings) if modes.get("social") == "live" else None),
    )


def configured_renderers(settings: Settings) -> dict[str, Renderer]:
    """Every channel's renderer built from settings exactly as the fan-out builds it (same SMS budget and
    price), so previews, /cek and partner payloads show what is sent, byte for byte.

    Raises: ChannelConfigError when the SMS settings are invalid.
    """
    return build_renderers(twilio=twilio_config(settings))

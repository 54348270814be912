"""The SMS channel as the registry sees it: Twilio settings, the segment-budget renderer, the live sender."""

from __future__ import annotations

from decimal import Decimal

from channels.base import Audience, Channel, ChannelLimits, Renderer, window_safe
from channels.sms.inbound import parse_inbound
from channels.sms.provider import SenderRates, TwilioConfig, TwilioSms
from channels.sms.render import SmsRenderer
from channels.sms.settings import TwilioSettings
from channels.spec import BuildContext, ChannelConfigError, ChannelSpec, guarded
from channels.twilio.client import client_for


def sms_config(settings: TwilioSettings, ctx: BuildContext) -> TwilioConfig:
    """The adapter config from the SMS settings."""
    return settings.to_config(ctx.public_base_url)


def sms_renderer(config: object) -> SmsRenderer:
    """The SMS renderer with the configured segment budget and price (defaults without a config).

    Raises: ChannelConfigError.
    """
    if not isinstance(config, TwilioConfig):
        return SmsRenderer()
    try:
        return SmsRenderer(
            max_segments=config.max_segments,
            severity_budgets=config.severity_segments,
            price_per_segment=Decimal(config.price_per_segment),
            currency=config.currency,
        )
    except (ValueError, ArithmeticError) as exc:
        raise ChannelConfigError(f"channel 'sms': {exc}") from exc


def twilio_sms(config: object, renderer: Renderer, ctx: BuildContext) -> Channel:
    """The live SMS channel through Twilio.

    Raises: ChannelConfigError without an account or a sender, or with invalid limits.
    """
    if not isinstance(config, TwilioConfig) or not (config.account_sid and config.auth_token):
        raise ChannelConfigError("channel 'sms': live mode needs a Twilio account SID and auth token")
    client = client_for(config)
    return guarded(
        "sms",
        lambda: TwilioSms(
            renderer,
            client=client,
            messaging_service_sid=config.messaging_service_sid,
            sender_numbers=config.sender_numbers,
            sender_strategy=config.sender_strategy,
            status_callback_url=config.status_callback_url,
            max_concurrency=config.max_concurrency,
            limits=ChannelLimits(*window_safe(config.rate_per_second), max_batch=500),
            sender_rates=SenderRates(
                long_code=config.long_code_rate,
                short_code=config.short_code_rate,
                messaging_service=config.messaging_service_rate,
            ),
            account_sid=config.account_sid,
        ),
    )


SMS = ChannelSpec(
    name="sms",
    audience=Audience.SUBSCRIBERS,
    settings_key="twilio",
    settings_model=TwilioSettings,
    config=sms_config,
    renderer=sms_renderer,
    sender=twilio_sms,
    inbound=parse_inbound,
    limits=ChannelLimits(*window_safe(2000.0), max_batch=500),
    subscriber_address="phone",
    credentials_hint="BROADCAST_TWILIO__ACCOUNT_SID and BROADCAST_TWILIO__AUTH_TOKEN",
)

"""The WhatsApp channel as the registry sees it: settings under the Twilio account's, the template renderer,
the live sender, the inbound parser and limits (Twilio's per sender, Meta's messaging tier)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from channels.base import Channel, ChannelLimits, InboundEvent, RecipientCap, Renderer, window_safe
from channels.sms.channel import SMS
from channels.sms.settings import TwilioSettings
from channels.spec import BuildContext, ChannelConfigError
from channels.twilio.client import client_for
from channels.whatsapp.inbound import parse_inbound
from channels.whatsapp.render import WhatsAppRenderer
from channels.whatsapp.sender import TwilioWhatsApp, tier_cap
from channels.whatsapp.settings import SENDER_RATE, WhatsAppConfig
from channels.whatsapp.templates import bodies


def whatsapp_config(settings: TwilioSettings, ctx: BuildContext) -> WhatsAppConfig:
    """The adapter config from the Twilio settings (the account, its webhook base) and their `whatsapp` part."""
    own = settings.whatsapp
    return WhatsAppConfig(
        account_sid=settings.account_sid,
        auth_token=settings.auth_token.get_secret_value(),
        from_number=own.from_number,
        messaging_service_sid=own.messaging_service_sid,
        content_sids=tuple(sorted(own.content_sids.items())),
        status_callback_url=own.status_callback_url or settings.status_callback(ctx.public_base_url),
        max_concurrency=settings.max_concurrency,
        timeout_s=settings.timeout_s,
        account_rate=settings.rate_per_second,
        sender_rate=own.sender_rate,
        tier=own.tier_limit,
        tier_key=own.portfolio,
        api_base_url=settings.api_base_url,
    )


def _renderer(config: object) -> WhatsAppRenderer:
    sids = dict(config.content_sids) if isinstance(config, WhatsAppConfig) else {}
    return WhatsAppRenderer(sids)


def missing_templates(config: WhatsAppConfig) -> list[str]:
    """The template keys with no content SID in `config` (every one needs one before alerts can go out)."""
    have = dict(config.content_sids)
    return [key for key in sorted(bodies()) if not have.get(key)]


def _sender(config: object, renderer: Renderer, ctx: BuildContext) -> Channel:
    if not isinstance(config, WhatsAppConfig) or not (config.account_sid and config.auth_token):
        raise ChannelConfigError("channel 'whatsapp': live mode needs a Twilio account SID and auth token")
    missing = missing_templates(config)
    if missing:
        raise ChannelConfigError(
            f"channel 'whatsapp': no content SID for {len(missing)} template(s) ({', '.join(missing[:4])}…); set "
            "BROADCAST_TWILIO__WHATSAPP__CONTENT_SIDS (docs/channels.md)"
        )
    client = client_for(config)
    try:
        return TwilioWhatsApp(renderer, client=client, config=config)
    except ValueError as exc:
        raise ChannelConfigError(f"channel 'whatsapp': {exc}") from exc


def _configured(settings: TwilioSettings) -> bool:
    return settings.configured and settings.whatsapp.has_sender


def _recipient_cap(config: object) -> RecipientCap | None:
    return tier_cap(config if isinstance(config, WhatsAppConfig) else WhatsAppConfig())


def _inbound(form: Mapping[str, object]) -> InboundEvent | None:
    message = parse_inbound({k: str(v) for k, v in form.items()})
    if message is None:
        return None
    return InboundEvent(source="whatsapp", external_id=message.sid, sender=message.phone, text=message.text, raw=form)


# The SMS spec's audience, settings (the Twilio account) and address, with WhatsApp's own parts.
WHATSAPP = replace(
    SMS,
    name="whatsapp",
    config=whatsapp_config,
    renderer=_renderer,
    sender=_sender,
    configured=_configured,
    inbound=_inbound,
    limits=ChannelLimits(*window_safe(SENDER_RATE), max_batch=500),
    recipient_cap=_recipient_cap,
    credentials_hint=(
        "BROADCAST_TWILIO__ACCOUNT_SID, BROADCAST_TWILIO__AUTH_TOKEN, BROADCAST_TWILIO__WHATSAPP__FROM_NUMBER and "
        "BROADCAST_TWILIO__WHATSAPP__CONTENT_SIDS"
    ),
)

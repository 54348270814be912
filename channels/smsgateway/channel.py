"""The SIM gateway channel as the registry sees it: its settings, the SMS renderer under its own name, the phone
as sender, the signed-webhook parser and the phone's declared limits."""

from __future__ import annotations

from channels.base import Audience, Channel, ChannelLimits, Renderer
from channels.sms.render import SmsRenderer
from channels.smsgateway.inbound import parse_inbound
from channels.smsgateway.sender import SimGateway
from channels.smsgateway.settings import SmsGatewayConfig, SmsGatewaySettings
from channels.spec import BuildContext, ChannelConfigError, ChannelSpec


class GatewaySmsRenderer(SmsRenderer):
    """The same SMS text as Twilio's, sent from the gateway phone (every part counts against its limits)."""

    name = "smsgateway"


def gateway_config(settings: SmsGatewaySettings, ctx: BuildContext) -> SmsGatewayConfig:
    """The adapter config from the gateway settings."""
    return settings.to_config()


def _renderer(config: object) -> GatewaySmsRenderer:
    return GatewaySmsRenderer()


def sim_gateway(config: object, renderer: Renderer, ctx: BuildContext) -> Channel:
    """The live gateway channel.

    Raises: ChannelConfigError without the gateway's URL or password.
    """
    if not isinstance(config, SmsGatewayConfig):
        raise ChannelConfigError("channel 'smsgateway': live mode needs the gateway's URL and password")
    try:
        return SimGateway(renderer, config=config)
    except ValueError as exc:
        raise ChannelConfigError(f"channel 'smsgateway': {exc}") from exc


def _configured(settings: SmsGatewaySettings) -> bool:
    return settings.configured


_WINDOW = SmsGatewayConfig().buckets()[0]

SMSGATEWAY = ChannelSpec(
    name="smsgateway",
    audience=Audience.SUBSCRIBERS,
    settings_key="smsgateway",
    settings_model=SmsGatewaySettings,
    config=gateway_config,
    renderer=_renderer,
    sender=sim_gateway,
    configured=_configured,
    inbound=parse_inbound,
    limits=ChannelLimits(_WINDOW.rate, int(_WINDOW.burst), max_batch=20),
    subscriber_address="phone",
    credentials_hint="BROADCAST_SMSGATEWAY__BASE_URL and BROADCAST_SMSGATEWAY__PASSWORD",
)

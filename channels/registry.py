"""Every channel the service knows, in one explicit table, and how each is built."""

from __future__ import annotations

from decimal import Decimal

from channels.base import AlertData, Channel, ChannelLimits, Recipient, Renderer, window_safe
from channels.outbox import Outbox
from channels.sms import SenderRates, SmsRenderer, TwilioConfig, TwilioSms, build_client
from channels.social import XConfig, XPost, XRenderer
from channels.web import WebPage, WebRenderer

RENDERERS: dict[str, type[Renderer]] = {r.name: r for r in (SmsRenderer, XRenderer, WebRenderer)}


class ChannelConfigError(Exception):
    """A channel cannot be built as configured; raised at startup, before any alert arrives."""


def build_renderer(name: str, *, twilio: TwilioConfig | None = None) -> Renderer:
    """The renderer of channel `name` as configured: the one sending, previews and /cek all use.

    Raises: ChannelConfigError.
    """
    renderer_cls = RENDERERS.get(name)
    if renderer_cls is None:
        raise ChannelConfigError(f"unknown channel {name!r}; known: {', '.join(sorted(RENDERERS))}")
    return _sms_renderer(twilio) if name == "sms" and twilio is not None else renderer_cls()


def build_renderers(*, twilio: TwilioConfig | None = None) -> dict[str, Renderer]:
    """Every known channel's renderer as configured, keyed by channel name.

    Raises: ChannelConfigError.
    """
    return {name: build_renderer(name, twilio=twilio) for name in RENDERERS}


def build_channel(
    name: str,
    *,
    mode: str,
    public_base_url: str,
    twilio: TwilioConfig | None = None,
    x_config: XConfig | None = None,
) -> Channel:
    """The channel `name` in `mode` ("outbox" or "live"); live SMS needs `twilio`, live social `x_config`.

    Raises: ChannelConfigError.
    """
    renderer = build_renderer(name, twilio=twilio)
    if name == "web":
        return WebPage(renderer, public_base_url=public_base_url)
    if mode == "outbox":
        return Outbox(renderer)
    if name == "sms" and twilio is not None:
        return _twilio_sms(renderer, twilio)
    if name == "social" and x_config is not None and isinstance(renderer, XRenderer):
        try:
            return XPost.from_config(x_config, renderer)
        except ValueError as exc:
            raise ChannelConfigError(f"channel 'social': {exc}") from exc
    raise ChannelConfigError(
        f"channel {name!r}: live mode has no provider adapter in this version; "
        "run it in outbox mode (unset its credentials)"
    )


def build_channels(
    names: list[str],
    *,
    modes: dict[str, str],
    public_base_url: str,
    twilio: TwilioConfig | None = None,
    x_config: XConfig | None = None,
) -> dict[str, Channel]:
    """All enabled channels, keyed by name; outbox unless `modes` says live."""
    return {
        n: build_channel(
            n, mode=modes.get(n, "outbox"), public_base_url=public_base_url, twilio=twilio, x_config=x_config
        )
        for n in names
    }


def _sms_renderer(config: TwilioConfig) -> SmsRenderer:
    try:
        return SmsRenderer(
            max_segments=config.max_segments,
            severity_budgets=config.severity_segments,
            price_per_segment=Decimal(config.price_per_segment),
            currency=config.currency,
        )
    except (ValueError, ArithmeticError) as exc:
        raise ChannelConfigError(f"channel 'sms': {exc}") from exc


def _twilio_sms(renderer: Renderer, config: TwilioConfig) -> TwilioSms:
    if not (config.account_sid and config.auth_token):
        raise ChannelConfigError("channel 'sms': live mode needs a Twilio account SID and auth token")
    client = build_client(
        config.account_sid,
        config.auth_token,
        timeout=config.timeout_s,
        pool_size=config.max_concurrency,
        api_base_url=config.api_base_url,
    )
    try:
        return TwilioSms(
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
        )
    except ValueError as exc:
        raise ChannelConfigError(f"channel 'sms': {exc}") from exc


def public_recipient(alert: AlertData) -> Recipient:
    """The single recipient of a public channel: the alert's own page."""
    return Recipient(key="public", address=alert.public_url, language=alert.infos[0].language)

"""Every channel the service knows, in one explicit table, and how each is built."""

from __future__ import annotations

from channels.base import AlertData, Channel, Recipient, Renderer
from channels.outbox import Outbox
from channels.sms import SmsRenderer
from channels.social import XConfig, XPost, XRenderer
from channels.web import WebPage, WebRenderer

RENDERERS: dict[str, type[Renderer]] = {r.name: r for r in (SmsRenderer, XRenderer, WebRenderer)}


class ChannelConfigError(Exception):
    """A channel cannot be built as configured; raised at startup, before any alert arrives."""


def build_channel(name: str, *, mode: str, public_base_url: str, x_config: XConfig | None = None) -> Channel:
    """The channel `name` in `mode` ("outbox" or "live"); live "social" needs `x_config`.

    Raises: ChannelConfigError.
    """
    renderer_cls = RENDERERS.get(name)
    if renderer_cls is None:
        raise ChannelConfigError(f"unknown channel {name!r}; known: {', '.join(sorted(RENDERERS))}")
    renderer = renderer_cls()
    if name == "web":
        return WebPage(renderer, public_base_url=public_base_url)
    if mode == "outbox":
        return Outbox(renderer)
    if name == "social" and x_config is not None:
        try:
            return XPost.from_config(x_config, XRenderer())
        except ValueError as exc:
            raise ChannelConfigError(f"channel 'social': {exc}") from exc
    raise ChannelConfigError(
        f"channel {name!r}: live mode has no provider adapter in this version; "
        "run it in outbox mode (unset its credentials)"
    )


def build_channels(
    names: list[str], *, modes: dict[str, str], public_base_url: str, x_config: XConfig | None = None
) -> dict[str, Channel]:
    """All enabled channels, keyed by name; every one defaults to outbox mode."""
    return {
        n: build_channel(n, mode=modes.get(n, "outbox"), public_base_url=public_base_url, x_config=x_config)
        for n in names
    }


def public_recipient(alert: AlertData) -> Recipient:
    """The single recipient of a public channel: the alert's own page."""
    return Recipient(key="public", address=alert.public_url, language=alert.infos[0].language)

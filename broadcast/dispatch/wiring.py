"""The configured channel set from settings: the one place live providers are configured (channels.registry
builds it; fan-out, previews, /cek, pollers and webhooks all take what they need from it)."""

from __future__ import annotations

from collections.abc import Mapping

from broadcast.settings import Settings
from channels.base import Channel, Renderer
from channels.registry import ChannelSet, build_channel_set, get_spec
from channels.spec import BuildContext


def channel_set(settings: Settings, *, configs: Mapping[str, object] | None = None) -> ChannelSet:
    """Every registered channel's renderer and every enabled channel's sender: live only in production with
    credentials, the outbox otherwise, always. `configs` replaces adapter configs by channel name (tests point
    them at local fakes).

    Raises: ChannelConfigError when a channel is misconfigured.
    """
    return build_channel_set(
        settings,
        enabled=settings.enabled_channels,
        live_allowed=settings.live_providers_allowed,
        public_base_url=settings.public_base_url,
        configs=configs,
    )


def channel_config(settings: Settings, name: str) -> object:
    """Channel `name`'s adapter config from its settings (e.g. the SMS channel's TwilioConfig).

    Raises: ChannelConfigError for an unknown channel.
    """
    spec = get_spec(name)
    return spec.config(spec.settings_of(settings), BuildContext(public_base_url=settings.public_base_url))


def build_active_channels(settings: Settings, *, configs: Mapping[str, object] | None = None) -> dict[str, Channel]:
    """The enabled channels' senders (see `channel_set`).

    Raises: ChannelConfigError.
    """
    return channel_set(settings, configs=configs).senders


def configured_renderers(settings: Settings) -> dict[str, Renderer]:
    """Every channel's renderer built from settings exactly as the fan-out builds it (same SMS budget and
    price), so previews, /cek and partner payloads show what is sent, byte for byte.

    Raises: ChannelConfigError when a channel's settings are invalid.
    """
    return channel_set(settings).renderers

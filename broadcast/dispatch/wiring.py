"""The configured channel set from settings: the one place live providers are configured (channels.registry
builds it; fan-out, previews, /cek, pollers and webhooks all take what they need from it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import redis

from broadcast.dispatch.ratelimit import RateLimiter
from broadcast.redisclient import redis_client
from broadcast.settings import Settings
from channels.base import Channel, Renderer
from channels.registry import ChannelSet, build_channel_set, get_spec, recipient_caps
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


@dataclass(frozen=True, slots=True)
class CapUsage:
    """A channel's cap on distinct recipients per window and how many it counts now (None: unknown)."""

    limit: int
    used: int | None
    window_s: float


def recipient_cap_usage(settings: Settings, channels: list[str]) -> dict[str, CapUsage]:
    """For each of `channels` with a cap on distinct recipients (WhatsApp's messaging tier): the cap and the people
    already counted in its window, read from the dispatcher's Redis set (None when Redis cannot be read)."""
    caps = {n: c for n, c in recipient_caps(channel_set(settings).configs).items() if n in channels}
    if not caps:
        return {}
    limiter = RateLimiter(redis_client(settings.resolved_redis_url))
    out: dict[str, CapUsage] = {}
    for name, cap in caps.items():
        try:
            used: int | None = limiter.recipients_in_window(cap)
        except redis.RedisError:
            used = None
        out[name] = CapUsage(cap.limit, used, cap.window_s)
    return out

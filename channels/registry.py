"""Every channel the service knows, in one explicit table, and the one function that builds the configured set.

Adding a channel: one package under `channels/` exposing a `ChannelSpec`, one line in `CHANNELS`, and (when it
has settings) one field on the service settings named by the spec's `settings_key`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from channels.base import Audience, Channel, RecipientCap, Renderer
from channels.outbox import Outbox
from channels.sms.channel import SMS
from channels.smsgateway.channel import SMSGATEWAY
from channels.social.channel import SOCIAL
from channels.spec import BuildContext, ChannelConfigError, ChannelSpec
from channels.telegram.channel import TELEGRAM, TELEGRAM_CHANNEL
from channels.web import WEB
from channels.whatsapp.channel import WHATSAPP

CHANNELS: dict[str, ChannelSpec] = {
    s.name: s for s in (SMS, SOCIAL, WEB, TELEGRAM, TELEGRAM_CHANNEL, SMSGATEWAY, WHATSAPP)
}

__all__ = [
    "CHANNELS",
    "ChannelConfigError",
    "ChannelSet",
    "ChannelSpec",
    "audience_of",
    "build_channel",
    "build_channel_set",
    "build_channels",
    "build_renderer",
    "channel_mode",
    "get_spec",
    "personal_channels",
    "recipient_caps",
]


def get_spec(name: str) -> ChannelSpec:
    """The registered channel `name`.

    Raises: ChannelConfigError for a name nobody registered.
    """
    spec = CHANNELS.get(name)
    if spec is None:
        raise ChannelConfigError(f"unknown channel {name!r}; known: {', '.join(sorted(CHANNELS))}")
    return spec


def audience_of(name: str) -> Audience:
    """Whether channel `name` sends one message per subscriber or one public post per alert.

    Raises: ChannelConfigError for an unknown channel.
    """
    return get_spec(name).audience


def personal_channels() -> tuple[str, ...]:
    """The registered channels that send one message per subscriber, in registry order."""
    return tuple(n for n, s in CHANNELS.items() if s.audience is Audience.SUBSCRIBERS)


def build_renderer(name: str, *, config: object = None) -> Renderer:
    """The renderer of channel `name` from its adapter config (its defaults without one): the one sending,
    previews and /cek all use.

    Raises: ChannelConfigError.
    """
    return get_spec(name).renderer(config)


def build_channel(name: str, *, mode: str, public_base_url: str, config: object = None) -> Channel:
    """The channel `name` in `mode` ("outbox" or "live", always live for our own site) from its adapter config.

    Raises: ChannelConfigError (unknown channel, live without a sender or a valid config).
    """
    spec = get_spec(name)
    return _build(spec, mode, spec.renderer(config), config, BuildContext(public_base_url=public_base_url))


def _build(spec: ChannelSpec, mode: str, renderer: Renderer, config: object, ctx: BuildContext) -> Channel:
    if spec.always_live and spec.sender is not None:
        return spec.sender(config, renderer, ctx)
    if mode == "outbox":
        return Outbox(renderer)
    if spec.sender is None:
        raise ChannelConfigError(
            f"channel {spec.name!r}: live mode has no provider adapter in this version; "
            "run it in outbox mode (unset its credentials)"
        )
    return spec.sender(config, renderer, ctx)


def build_channels(
    names: Iterable[str], *, modes: Mapping[str, str], public_base_url: str, configs: Mapping[str, object] = {}
) -> dict[str, Channel]:
    """The channels `names`, keyed by name; outbox unless `modes` says live.

    Raises: ChannelConfigError.
    """
    return {
        n: build_channel(n, mode=modes.get(n, "outbox"), public_base_url=public_base_url, config=configs.get(n))
        for n in names
    }


@dataclass(frozen=True, slots=True)
class ChannelSet:
    """The configured channels: every registered channel's renderer (previews, /cek) and the enabled senders."""

    senders: dict[str, Channel]
    renderers: dict[str, Renderer]
    configs: dict[str, object] = field(default_factory=dict)
    modes: dict[str, str] = field(default_factory=dict)


def channel_mode(spec: ChannelSpec, settings: object, *, live_allowed: bool) -> str:
    """ "live" for our own site, or in production with the provider configured; "outbox" everywhere else."""
    if spec.always_live:
        return "live"
    return "live" if live_allowed and spec.configured(spec.settings_of(settings)) else "outbox"


def build_channel_set(
    settings: object,
    *,
    enabled: Iterable[str],
    live_allowed: bool,
    public_base_url: str,
    configs: Mapping[str, object] | None = None,
) -> ChannelSet:
    """The channel set from the service settings: each channel's own settings (its `settings_key` attribute)
    become its adapter config, its renderer and, when enabled, its sender: live only when `live_allowed`
    (production) and configured, the outbox otherwise. `configs` replaces configs by name (tests point them at
    local fakes).

    Raises: ChannelConfigError for an unknown enabled channel or an invalid configuration.
    """
    ctx = BuildContext(public_base_url=public_base_url)
    enabled = list(enabled)
    for name in enabled:
        get_spec(name)
    built: dict[str, object] = {}
    renderers: dict[str, Renderer] = {}
    for name, spec in CHANNELS.items():
        built[name] = (configs or {}).get(name) or spec.config(spec.settings_of(settings), ctx)
        renderers[name] = spec.renderer(built[name])
    modes = {n: channel_mode(CHANNELS[n], settings, live_allowed=live_allowed) for n in enabled}
    senders = {n: _build(CHANNELS[n], modes[n], renderers[n], built[n], ctx) for n in enabled}
    return ChannelSet(senders=senders, renderers=renderers, configs=built, modes=modes)


def recipient_caps(configs: Mapping[str, object]) -> dict[str, RecipientCap]:
    """Each registered channel's cap on distinct recipients per window (WhatsApp's messaging tier) from its adapter
    config, for the channels that have one."""
    caps: dict[str, RecipientCap] = {}
    for name, spec in CHANNELS.items():
        cap = spec.recipient_cap(configs.get(name)) if spec.recipient_cap is not None else None
        if cap is not None:
            caps[name] = cap
    return caps

"""What a channel package declares: its settings, renderer, live sender, inbound parser and limits.

Each channel is one package under `channels/` exposing one `ChannelSpec`; `channels.registry.CHANNELS` maps
names to them and `build_channel_set` builds the configured set. Specs never read the environment: the
entrypoint hands each one its own settings model (the `settings_key` attribute of the service settings).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel

from channels.base import Audience, Channel, ChannelLimits, InboundEvent, RecipientCap, Renderer


def _loopback_only(value: str) -> str:
    if value and not value.startswith(("http://127.0.0.1:", "http://localhost:")):
        raise ValueError("may only point at a local fake provider (http://127.0.0.1:PORT)")
    return value


# A provider base URL setting that exists only to reach a local fake (tests, benchmarks): loopback URLs only, so
# no setting can send a provider's credentials anywhere else.
LocalFakeUrl = Annotated[str, AfterValidator(_loopback_only)]


class ChannelConfigError(Exception):
    """A channel cannot be built as configured; raised at startup, before any alert arrives."""


class NoSettings(BaseModel):
    """The settings of a channel that has none (the web pages, toy channels in tests)."""


@dataclass(frozen=True, slots=True)
class BuildContext:
    """What every channel may need besides its own settings: where our public site is."""

    public_base_url: str


# A channel's own settings (its `settings_model`) + the context → the adapter's config (a frozen dataclass).
ConfigFactory = Callable[[Any, BuildContext], Any]
# The adapter config → the renderer previews, /cek and the fan-out all use.
RendererFactory = Callable[[Any], Renderer]
# The adapter config, its renderer and the context → the live sender. Raises ChannelConfigError.
SenderFactory = Callable[[Any, Renderer, BuildContext], Channel]
# A provider's inbound payload (form or JSON fields) → an event; None when not a citizen message.
InboundParser = Callable[[Mapping[str, Any]], InboundEvent | None]


# The adapter config → the provider's cap on distinct recipients per window (None: no such cap).
RecipientCapFactory = Callable[[Any], RecipientCap | None]


def _no_config(settings: Any, ctx: BuildContext) -> None:
    return None


def settings_say_configured(settings: Any) -> bool:
    """The default `configured`: the settings model's own `configured` (False for a model without one)."""
    return bool(getattr(settings, "configured", False))


def guarded(name: str, make: Callable[[], Channel]) -> Channel:
    """`make()`, the live sender of channel `name`; a ValueError it raises (a bad configuration) becomes
    ChannelConfigError naming the channel.

    Raises: ChannelConfigError.
    """
    try:
        return make()
    except ValueError as exc:
        raise ChannelConfigError(f"channel {name!r}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    """One channel as its package declares it.

    name: the channel's name in alerts, deliveries and settings (`enabled_channels`).
    settings_key / settings_model: the attribute of the service settings holding this channel's settings and its
    class (absent attribute: the model's defaults). configured: whether those settings name a real provider
    account (the channel then runs live in production; everywhere else it is the outbox); by default the
    settings model's own `configured` property.
    subscriber_address: personal channels only, the Subscriber attribute holding the address messages go to.
    always_live: our own site (web), which never needs a provider.
    recipient_cap: from the adapter config, a cap on distinct recipients per window (WhatsApp's tier), which the
    composer warns about before approval.
    """

    name: str
    audience: Audience
    renderer: RendererFactory
    settings_model: type[BaseModel] = NoSettings
    settings_key: str = ""
    config: ConfigFactory = _no_config
    sender: SenderFactory | None = None
    configured: Callable[[Any], bool] = settings_say_configured
    inbound: InboundParser | None = None
    limits: ChannelLimits | None = None
    recipient_cap: RecipientCapFactory | None = None
    subscriber_address: str = "phone"
    # Personal channels: whether the provider reports delivery to the person (status callbacks). With receipts a
    # sent message that is not delivered within the fallback wait counts as not reached and the person's next
    # channel is tried; without them (the Bot API), sent is as far as it goes and counts as reached.
    delivery_receipts: bool = True
    always_live: bool = False
    # Shown by `broadcast doctor` when the channel is enabled in production without credentials.
    credentials_hint: str = ""

    def settings_of(self, settings: object) -> BaseModel:
        """This channel's settings from the service settings (the model's defaults when it has none there)."""
        own = getattr(settings, self.settings_key, None) if self.settings_key else None
        return own if isinstance(own, self.settings_model) else self.settings_model()

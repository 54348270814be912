"""A toy channel: everything a channel package declares, to show that adding one takes this package and a
registry line (the test adds the line at run time). It needs no provider, so like our own site it is always
live: its sender keeps what it was given in `DELIVERED`, where the test finds what the fan-out sent."""

from __future__ import annotations

import threading

from pydantic import BaseModel

from channels.base import AlertData, Audience, Channel, ChannelLimits, OutboundMessage, Renderer
from channels.spec import BuildContext, ChannelSpec

DELIVERED: list[OutboundMessage] = []
_lock = threading.Lock()


class ToySettings(BaseModel):
    """The toy channel's settings: only a greeting it prefixes every message with."""

    greeting: str = "TOY"


class ToyRenderer(Renderer):
    name = "toy"
    audience = Audience.SUBSCRIBERS

    def __init__(self, greeting: str = "TOY") -> None:
        self.greeting = greeting

    def render_text(self, alert: AlertData, language: str) -> str:
        info = alert.info_for(language)
        return f"{self.greeting}: {info.headline}. {info.instruction}"


class ToySender(Channel):
    """Delivers by keeping the message (one id per message, like a provider's)."""

    limits = ChannelLimits(rate_per_second=50.0, burst=50, max_batch=50)

    def send(self, message: OutboundMessage) -> str:
        with _lock:
            DELIVERED.append(message)
            return f"toy-{len(DELIVERED)}"


def _config(settings: ToySettings, ctx: BuildContext) -> str:
    return settings.greeting


def _renderer(config: object) -> ToyRenderer:
    return ToyRenderer(config if isinstance(config, str) else "TOY")


def _sender(config: object, renderer: Renderer, ctx: BuildContext) -> Channel:
    return ToySender(renderer)


TOY = ChannelSpec(
    name="toy",
    audience=Audience.SUBSCRIBERS,
    renderer=_renderer,
    settings_key="toy",
    settings_model=ToySettings,
    config=_config,
    sender=_sender,
    always_live=True,
    limits=ToySender.limits,
)

"""A toy channel: everything a channel package declares, to show that adding one takes this package and a
registry line (the test adds the line at run time)."""

from __future__ import annotations

from pydantic import BaseModel

from channels.base import AlertData, Audience, ChannelLimits, Renderer
from channels.spec import ChannelSpec


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


def _config(settings: ToySettings, ctx: object) -> str:
    return settings.greeting


def _renderer(config: object) -> ToyRenderer:
    return ToyRenderer(config if isinstance(config, str) else "TOY")


TOY = ChannelSpec(
    name="toy",
    audience=Audience.SUBSCRIBERS,
    settings_key="toy",
    settings_model=ToySettings,
    config=_config,
    renderer=_renderer,
    limits=ChannelLimits(rate_per_second=5.0, burst=5, max_batch=50),
    subscriber_address="phone",
)

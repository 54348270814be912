"""The social channel (X) as the registry sees it: X settings, the thread renderer, the live poster."""

from __future__ import annotations

from channels.base import Audience, Channel, Renderer
from channels.social.settings import XSettings
from channels.social.x import XConfig, XPost
from channels.social.x_render import XRenderer
from channels.spec import BuildContext, ChannelConfigError, ChannelSpec, guarded


def x_config(settings: XSettings, ctx: BuildContext) -> XConfig | None:
    """The adapter config from the X settings; None without accounts."""
    return settings.to_config()


def x_renderer(config: object) -> XRenderer:
    """The X thread renderer (no setting changes it)."""
    return XRenderer()


def x_post(config: object, renderer: Renderer, ctx: BuildContext) -> Channel:
    """The live X channel posting as the configured accounts.

    Raises: ChannelConfigError without accounts or with an account lacking its tokens.
    """
    if not isinstance(config, XConfig) or not isinstance(renderer, XRenderer):
        raise ChannelConfigError("channel 'social': live mode needs an X app key and an account")
    return guarded("social", lambda: XPost.from_config(config, renderer))


SOCIAL = ChannelSpec(
    name="social",
    audience=Audience.PUBLIC,
    settings_key="x",
    settings_model=XSettings,
    config=x_config,
    renderer=x_renderer,
    sender=x_post,
    credentials_hint="BROADCAST_X__CONSUMER_KEY and an account's access token",
)

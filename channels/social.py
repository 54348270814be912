"""Social media (X): one public post per alert, Indonesian first."""

from __future__ import annotations

from channels.base import AlertData, Audience, Renderer
from templates import message_env


class XRenderer(Renderer):
    name = "social"
    audience = Audience.PUBLIC

    def render_text(self, alert: AlertData, language: str) -> str:
        info = alert.info_for(language)
        lang = "en" if info.language.startswith("en") else "id"
        tpl = message_env().get_template(f"x/alert.{lang}.j2")
        return tpl.render(alert=alert, info=info).strip()

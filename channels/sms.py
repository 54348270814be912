"""SMS: one short text per subscriber in their language."""

from __future__ import annotations

from channels.base import AlertData, Audience, Renderer
from templates import message_env


class SmsRenderer(Renderer):
    name = "sms"
    audience = Audience.SUBSCRIBERS

    def render_text(self, alert: AlertData, language: str) -> str:
        info = alert.info_for(language)
        lang = "en" if info.language.startswith("en") else "id"
        tpl = message_env().get_template(f"sms/alert.{lang}.j2")
        return " ".join(tpl.render(alert=alert, info=info).split())

"""Telegram text: HTML parse mode, every value escaped, within 4096 characters, the action never cut."""

from __future__ import annotations

from html import escape

from channels.base import AlertData, Audience, Renderer, status_mark
from channels.telegram.settings import MAX_TEXT

_LABELS = {
    "id": {"area": "Wilayah", "action": "Tindakan", "code": "Kode", "check": "Cek"},
    "en": {"area": "Area", "action": "Action", "code": "Code", "check": "Check"},
}
_ELLIPSIS = "…"


class TelegramRenderer(Renderer):
    """One HTML message per language: mark and headline in bold, the action, what happens, area, code, link.

    The mark, headline and action are kept whole; only the description is shortened to fit 4096 characters."""

    name = "telegram"
    audience = Audience.SUBSCRIBERS

    def render_text(self, alert: AlertData, language: str) -> str:
        return self._compose(alert, language, mark=None)

    def marked_text(self, alert: AlertData, language: str) -> str:
        """The HTML text with the status mark inside the bold title (the mark is never escaped away)."""
        return self._compose(alert, language, mark=status_mark(alert.status, language))

    def _compose(self, alert: AlertData, language: str, *, mark: str | None) -> str:
        info = alert.info_for(language)
        labels = _LABELS.get(language.split("-")[0].lower(), _LABELS["en"])
        title = f"[{mark}] {info.headline}" if mark else info.headline
        head = f"<b>{escape(title)}</b>"
        action = f"<b>{labels['action']}:</b> {escape(info.instruction)}" if info.instruction else ""
        tail = [f"{labels['area']}: {escape(alert.area_desc)}"]
        if alert.verify_code:
            check = f" · {labels['check']}: {escape(alert.verify_url)}" if alert.verify_url else ""
            tail.append(f"{labels['code']}: <code>{escape(alert.verify_code)}</code>{check}")
        tail.append(escape(alert.public_url))
        fixed = [head, action, "", *tail]
        room = MAX_TEXT - len("\n\n".join(p for p in fixed if p)) - 2
        description = _shorten(info.description, room)
        parts = [head, action, escape(description) if description else "", *tail]
        return "\n\n".join(p for p in parts if p)


def _shorten(text: str, room: int) -> str:
    """`text` cut at a word to fit `room` characters once escaped ("" when nothing fits)."""
    if len(escape(text)) <= room:
        return text
    if room <= len(_ELLIPSIS):
        return ""
    cut = text
    while cut and len(escape(cut)) + len(_ELLIPSIS) > room:
        cut = cut[: max(0, min(len(cut) - 1, room - len(_ELLIPSIS)))]
        cut = cut.rsplit(" ", 1)[0] if " " in cut else cut
    return cut.rstrip() + _ELLIPSIS if cut else ""


class TelegramChannelRenderer(TelegramRenderer):
    """The same text, posted once to the agency's channel (one request reaches every member)."""

    name = "telegram_channel"
    audience = Audience.PUBLIC

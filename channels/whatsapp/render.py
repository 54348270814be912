"""WhatsApp alert messages: the alert's hazard template in the recipient's language with its variables filled,
exactly the text WhatsApp shows. The mark, headline, action, code and link are kept whole; only what is happening
(then the area) is shortened to fit WhatsApp's 1,024 characters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from channels.base import AlertData, Audience, OutboundMessage, Preview, Recipient, Renderer, TemplateRef, status_mark
from channels.text import change_line
from channels.whatsapp.templates import MAX_BODY, Filled, fit, template_key

_LABELS = {
    "id": {"Update": "PEMBARUAN", "Cancel": "DIBATALKAN", "Correction": "KOREKSI", "change": "Perubahan"},
    "en": {"Update": "UPDATE", "Cancel": "CANCELLED", "Correction": "CORRECTION", "change": "Change"},
}
# Shortened in this order when the text is too long; the action ({{2}}), code and link never are.
_SHORTEN = ("4", "3", "1")


class WhatsAppRenderer(Renderer):
    """One template message per language. `content_sids` (template key → Twilio content SID) only shows in
    previews which templates still need one; sending needs them all (checked when the live channel is built)."""

    name = "whatsapp"
    audience = Audience.SUBSCRIBERS

    def __init__(self, content_sids: Mapping[str, str] | None = None) -> None:
        self.content_sids = dict(content_sids or {})

    def filled(self, alert: AlertData, language: str) -> Filled:
        """The alert's template in `language` with its variables, the status mark and label in the first."""
        info = alert.info_for(language)
        lang = "id" if language.split("-")[0].lower() == "id" else "en"
        labels = _LABELS[lang]
        title = info.headline
        label = labels.get(alert.kind, "")
        change = change_line(alert, language)
        if label:
            title = f"{label}: {title}" + (f" ({labels['change']}: {change})" if change else "")
        mark = status_mark(alert.status, language)
        if mark:
            title = f"[{mark}] {title}"
        variables = {
            "1": title,
            "2": info.instruction,
            "3": alert.area_desc,
            "4": info.description,
            "5": alert.verify_code or "",
            "6": alert.verify_url or alert.short_url or alert.public_url,
        }
        return fit(template_key(info.event, language), variables, shorten=_SHORTEN)

    def render_text(self, alert: AlertData, language: str) -> str:
        return self.filled(alert, language).text

    def marked_text(self, alert: AlertData, language: str) -> str:
        """The filled template: the status mark is inside its first variable (a template's fixed text cannot
        change), so nothing is put in front of it."""
        return self.render_text(alert, language)

    def render(self, alert: AlertData, recipients: Sequence[Recipient]) -> list[OutboundMessage]:
        """One template message per recipient in their language (each language filled once)."""
        cache: dict[str, Filled] = {}
        out = []
        for r in recipients:
            if r.language not in cache:
                cache[r.language] = self.filled(alert, r.language)
            f = cache[r.language]
            ref = TemplateRef(f.key, tuple(f.variables.items()))
            out.append(OutboundMessage(r.address, f.text, r.key, r.language, template=ref))
        return out

    def preview(self, alert: AlertData) -> list[Preview]:
        """The exact text per language, with the template, its variables and its length against WhatsApp's."""
        out = []
        for info in alert.infos:
            f = self.filled(alert, info.language)
            details: dict[str, object] = {
                "template": f.key,
                "content_sid": self.content_sids.get(f.key, ""),
                "variables": f.variables,
                "characters": len(f.text),
                "max_characters": MAX_BODY,
                "shortened": f.shortened,
                "fits": f.fits,
            }
            out.append(Preview(info.language, f.text, details))
        return out

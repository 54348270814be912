"""SMS rendering: one text per subscriber language that fits the operator's segment budget.

The status mark (added by `Renderer.marked_text`), the link to the public page and the verification code always
survive; when the text is too long the description goes first, then the instruction, then the headline, each cut
at a word.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from itertools import accumulate

from channels.base import AlertData, Audience, InfoData, Preview, Renderer, status_mark
from channels.sms.segments import normalise_gsm7, sms_segments
from templates import message_env

MIN_SEGMENTS, MAX_SEGMENTS = 1, 3
DEFAULT_MAX_SEGMENTS = 1
# Twilio's list price for one outbound SMS segment to Indonesia is roughly this (USD); it is only an
# estimate for the preview. Deployments pass their contract price in (TwilioSettings.price_per_segment).
DEFAULT_PRICE_PER_SEGMENT = Decimal("0.41")
DEFAULT_CURRENCY = "USD"
# A one- or two-word stub of a sentence misleads more than it informs; drop the part instead.
MIN_FRAGMENT_WORDS = 3
_TRAILING_JUNK = " ,;:-–—(/"
# The fitter's order: (part, fewest words it may keep at this stage; 0 = may be dropped).
_STAGES: tuple[tuple[str, int], ...] = (
    ("description", 0),
    ("instruction", MIN_FRAGMENT_WORDS),
    ("headline", MIN_FRAGMENT_WORDS),
    ("instruction", 0),
    ("headline", 0),
)


def check_budget(max_segments: int) -> int:
    """`max_segments` when it is an allowed budget (1 to 3).

    Raises: ValueError.
    """
    if not MIN_SEGMENTS <= max_segments <= MAX_SEGMENTS:
        raise ValueError(f"SMS budget must be {MIN_SEGMENTS} to {MAX_SEGMENTS} segments, got {max_segments}")
    return max_segments


@dataclass(frozen=True, slots=True)
class FittedText:
    """A body (without the status mark) and whether any part had to be shortened or dropped."""

    body: str
    truncated: bool
    fits: bool


def _words(text: str) -> list[str]:
    return text.split()


def _headline(words: list[str], keep: int) -> str:
    if keep < len(words):
        return _cut(words, keep)
    text = " ".join(words)
    return text if not text or text[-1] in ".!?…" else f"{text}."


def _cut(words: list[str], keep: int) -> str:
    if keep >= len(words):
        return " ".join(words)
    if keep <= 0:
        return ""
    # Always "…": normalise_gsm7 turns it into "..." when the rest of the text is GSM-7, and keeps the
    # single character (1 unit instead of 3) when the text is UCS-2 anyway.
    return " ".join(words[:keep]).rstrip(_TRAILING_JUNK) + "…"


class SmsRenderer(Renderer):
    """Renders an alert as one SMS per language within a budget of 1-3 segments, with a cost preview."""

    name = "sms"
    audience = Audience.SUBSCRIBERS

    def __init__(
        self,
        *,
        max_segments: int = DEFAULT_MAX_SEGMENTS,
        price_per_segment: Decimal = DEFAULT_PRICE_PER_SEGMENT,
        currency: str = DEFAULT_CURRENCY,
    ) -> None:
        self.max_segments = check_budget(max_segments)
        self.price_per_segment = Decimal(price_per_segment)
        self.currency = currency

    def budget_for(self, alert: AlertData) -> int:
        """The alert's own segment budget when the operator chose one, else this renderer's default.

        Raises: ValueError.
        """
        chosen = alert.sms_max_segments
        return check_budget(chosen) if chosen is not None else self.max_segments

    def render_text(self, alert: AlertData, language: str) -> str:
        """The body in `language`, already shortened so that body plus status mark fit the budget."""
        return self.fit(alert, language).body

    def fit(self, alert: AlertData, language: str) -> FittedText:
        """Shorten description, then instruction, then headline until mark + body + link fit the budget."""
        info = alert.info_for(language)
        lang = "en" if info.language.lower().startswith("en") else "id"
        template = message_env().get_template(f"sms/alert.{lang}.j2")
        mark = status_mark(alert.status, language)
        prefix = f"[{mark}] " if mark else ""
        link = alert.short_url or alert.public_url
        budget = self.budget_for(alert)
        parts = _parts(info)
        keep = {k: len(v) for k, v in parts.items()}

        def body(keep: dict[str, int]) -> str:
            text = template.render(
                headline=_headline(parts["headline"], keep["headline"]),
                description=_cut(parts["description"], keep["description"]),
                instruction=_cut(parts["instruction"], keep["instruction"]),
                link=link,
                code=alert.verify_code,
                msg_type=alert.msg_type,
            )
            return normalise_gsm7(" ".join(text.split()))

        def fits(text: str) -> bool:
            return sms_segments(prefix + text).segments <= budget

        text = body(keep)
        if fits(text):
            return FittedText(text, truncated=False, fits=True)
        # No prefix longer than the whole budget in characters can fit, so the scan starts below that.
        ceiling = budget * 160
        for part, floor in _STAGES:
            words = parts[part]
            lengths = list(accumulate((len(w) + 1 for w in words), initial=0))
            for k in range(keep[part], floor - 1, -1):
                if 0 < k < min(MIN_FRAGMENT_WORDS, len(words)) or lengths[k] > ceiling:
                    continue
                trial = {**keep, part: k}
                text = body(trial)
                if fits(text):
                    return FittedText(text, truncated=True, fits=True)
            keep[part] = min(keep[part], floor)
        # Mark and link alone exceed the budget: send them anyway, never without them.
        return FittedText(body(keep), truncated=True, fits=False)

    def preview(self, alert: AlertData) -> list[Preview]:
        """Per language: exact text, encoding, segments, characters, units and a cost estimate per message."""
        out = []
        for info in alert.infos:
            fitted = self.fit(alert, info.language)
            text = self.marked_text(alert, info.language)
            seg = sms_segments(text)
            out.append(
                Preview(
                    info.language,
                    text,
                    {
                        "encoding": str(seg.encoding),
                        "segments": seg.segments,
                        "characters": seg.characters,
                        "units": seg.units,
                        "segment_limit": seg.limit,
                        "max_segments": self.budget_for(alert),
                        "fits": fitted.fits,
                        "truncated": fitted.truncated,
                        "cost_per_message": str(self.price_per_segment * seg.segments),
                        "price_per_segment": str(self.price_per_segment),
                        "currency": self.currency,
                    },
                )
            )
        return out

    def estimate_cost(self, alert: AlertData, recipients_by_language: Mapping[str, int]) -> Decimal:
        """What sending this alert costs: each language's segments x its recipients x the segment price."""
        total = Decimal(0)
        for language, count in recipients_by_language.items():
            segments = sms_segments(self.marked_text(alert, language)).segments
            total += self.price_per_segment * segments * count
        return total


def _parts(info: InfoData) -> dict[str, list[str]]:
    return {
        "headline": _words(info.headline),
        "description": _words(info.description),
        "instruction": _words(info.instruction),
    }

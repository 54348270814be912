"""SMS rendering: one text per subscriber language, composed by priority within the segment budget.

Always whole, in this order of priority: the status mark (added by `Renderer.marked_text`), what changed (an
Update), what (the headline), where (the area, unless the headline names it), what to do (the first sentence of
the instruction; of the description when there is no instruction), the verification code and the link. Then, as
far as the budget allows: the rest of the instruction sentence by sentence, then (once the whole instruction is
in) the description, whose last sentence may be cut at a word. Nothing of the first group is ever cut: when it
alone exceeds the budget the SMS takes the segments it needs and the preview says so (`action_fits` false).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from channels.base import AlertData, Audience, Preview, Renderer, status_mark
from channels.sms.segments import normalise_gsm7, sms_segments
from channels.text import as_sentence, change_line, names_the_area, place_names, sentences
from templates import message_env

MIN_SEGMENTS, MAX_SEGMENTS = 1, 3
DEFAULT_MAX_SEGMENTS = 1
# The default budget by CAP severity (the highest of the alert's info blocks): warnings that can cost lives get
# room for their whole instruction; everything else stays one segment. Deployments override it in settings.
DEFAULT_SEVERITY_BUDGETS: Mapping[str, int] = {"Extreme": 3, "Severe": 3}
# Twilio's list price for one outbound SMS segment to Indonesia is roughly this (USD); it is only an
# estimate for the preview. Deployments pass their contract price in (TwilioSettings.price_per_segment).
DEFAULT_PRICE_PER_SEGMENT = Decimal("0.41")
DEFAULT_CURRENCY = "USD"
# A one- or two-word stub of a sentence misleads more than it informs; drop the sentence instead.
MIN_FRAGMENT_WORDS = 3
# "Where" lists at most this many characters of place names, then says how many more there are.
MAX_WHERE_CHARS = 60
_TRAILING_JUNK = " ,;:-–—(/"
_SEVERITY_ORDER = ("Unknown", "Minor", "Moderate", "Severe", "Extreme")


def check_budget(max_segments: int) -> int:
    """`max_segments` when it is an allowed budget (1 to 3).

    Raises: ValueError.
    """
    if not MIN_SEGMENTS <= max_segments <= MAX_SEGMENTS:
        raise ValueError(f"SMS budget must be {MIN_SEGMENTS} to {MAX_SEGMENTS} segments, got {max_segments}")
    return max_segments


@dataclass(frozen=True, slots=True)
class FittedText:
    """A body (without the status mark) and how it was composed.

    `truncated`: some sentence of the instruction or description was left out or cut; `fits`: mark and body
    are within the budget; `action_fits`: the essentials (mark, change, what, where, first instruction
    sentence, code, link) alone are within the budget.
    """

    body: str
    truncated: bool
    fits: bool
    action_fits: bool = True
    first_instruction: str = ""


@dataclass(frozen=True, slots=True)
class Budget:
    """How many segments an alert's SMS may take, and why: "alert" (the operator chose), "setting" (one budget
    for every alert) or "severity" (the default by the alert's severity)."""

    segments: int
    source: str
    severity: str = ""


def _cut(words: list[str], keep: int) -> str:
    if keep >= len(words):
        return " ".join(words)
    if keep <= 0:
        return ""
    # Always "…": normalise_gsm7 turns it into "..." when the rest of the text is GSM-7, and keeps the
    # single character (1 unit instead of 3) when the text is UCS-2 anyway.
    return " ".join(words[:keep]).rstrip(_TRAILING_JUNK) + "…"


def _where(headline: str, area_desc: str, lang: str) -> str:
    """The area's place names without "Kecamatan"/"Kota" prefixes, unless the headline already names them; a
    long list gives its first places and how many more there are."""
    if not area_desc or names_the_area(headline, area_desc):
        return ""
    names = list(dict.fromkeys(place_names(area_desc)))
    shown: list[str] = []
    for name in names:
        if shown and len(", ".join([*shown, name])) > MAX_WHERE_CHARS:
            break
        shown.append(name)
    rest = len(names) - len(shown)
    more = "" if not rest else (f" dan {rest} wilayah lain" if lang == "id" else f" and {rest} more")
    return as_sentence(", ".join(shown) + more)


class SmsRenderer(Renderer):
    """Renders an alert as one SMS per language within a budget of 1-3 segments, with a cost preview."""

    name = "sms"
    audience = Audience.SUBSCRIBERS

    def __init__(
        self,
        *,
        max_segments: int | None = None,
        severity_budgets: Mapping[str, int] | Iterable[tuple[str, int]] | None = None,
        price_per_segment: Decimal = DEFAULT_PRICE_PER_SEGMENT,
        currency: str = DEFAULT_CURRENCY,
    ) -> None:
        """`max_segments`: one budget for every alert; None gives each alert the budget of its severity
        (`severity_budgets`, default Extreme/Severe 3, anything else 1)."""
        self.max_segments = None if max_segments is None else check_budget(max_segments)
        budgets = DEFAULT_SEVERITY_BUDGETS if severity_budgets is None else severity_budgets
        # A sorted tuple, not a dict: the renderer's configuration stays hashable (render caches key on it).
        self.severity_budgets = tuple(sorted((k, check_budget(v)) for k, v in dict(budgets).items()))
        self.price_per_segment = Decimal(price_per_segment)
        self.currency = currency

    def budget(self, alert: AlertData) -> Budget:
        """The alert's segment budget and where it comes from: the operator's choice, else the setting for
        every alert, else the default for the alert's highest severity.

        Raises: ValueError.
        """
        if alert.sms_max_segments is not None:
            return Budget(check_budget(alert.sms_max_segments), "alert")
        if self.max_segments is not None:
            return Budget(self.max_segments, "setting")
        severity = max(
            (i.severity for i in alert.infos),
            key=lambda s: _SEVERITY_ORDER.index(s) if s in _SEVERITY_ORDER else 0,
            default="Unknown",
        )
        return Budget(dict(self.severity_budgets).get(severity, DEFAULT_MAX_SEGMENTS), "severity", severity)

    def budget_for(self, alert: AlertData) -> int:
        """The number of segments the alert's SMS may take (see `budget`).

        Raises: ValueError.
        """
        return self.budget(alert).segments

    def render_text(self, alert: AlertData, language: str) -> str:
        """The body in `language`, composed by priority so that body plus status mark fit the budget."""
        return self.fit(alert, language).body

    def fit(self, alert: AlertData, language: str) -> FittedText:
        """The essentials whole, then the rest of the instruction and the description as far as the budget
        allows (see the module docstring)."""
        info = alert.info_for(language)
        lang = "en" if info.language.lower().startswith("en") else "id"
        template = message_env().get_template(f"sms/alert.{lang}.j2")
        mark = status_mark(alert.status, language)
        prefix = f"[{mark}] " if mark else ""
        budget = self.budget_for(alert)
        context = {
            "kind": alert.kind,
            "change": change_line(alert, language),
            "headline": as_sentence(info.headline),
            "where": _where(info.headline, alert.area_desc, lang),
            "code": alert.verify_code,
            "link": alert.short_url or alert.public_url,
        }
        instruction = sentences(info.instruction)
        description = sentences(info.description)

        def body(desc: list[str], instr: list[str]) -> str:
            text = template.render(
                **context,
                description=" ".join(as_sentence(d) for d in desc),
                instruction=" ".join(as_sentence(i) for i in instr),
            )
            return normalise_gsm7(" ".join(text.split()))

        def fits(desc: list[str], instr: list[str]) -> bool:
            return sms_segments(prefix + body(desc, instr)).segments <= budget

        # What to do: the instruction's first sentence; a Cancel has none, its reason (description) stands in.
        desc, instr = ([], instruction[:1]) if instruction else (description[:1], [])
        first = (instr or desc or [""])[0]
        action_fits = fits(desc, instr)
        if action_fits:
            for sentence in instruction[len(instr) :]:
                if not fits(desc, [*instr, sentence]):
                    break
                instr.append(sentence)
        # The description only once the whole instruction is in: its lower priority is never bought with an
        # instruction sentence left out.
        if action_fits and len(instr) == len(instruction):
            for sentence in description[len(desc) :]:
                if fits([*desc, sentence], instr):
                    desc.append(sentence)
                    continue
                partial = self._longest_prefix(sentence, lambda p: fits([*desc, p], instr))
                if partial:
                    desc.append(partial)
                break
        whole = len(instr) == len(instruction) and desc == description
        text = body(desc, instr)
        return FittedText(
            text,
            truncated=not whole,
            fits=sms_segments(prefix + text).segments <= budget,
            action_fits=action_fits,
            first_instruction=as_sentence(first),
        )

    @staticmethod
    def _longest_prefix(sentence: str, ok: Callable[[str], bool]) -> str:
        """The longest cut of `sentence` at a word (at least a third of it, and MIN_FRAGMENT_WORDS words) that
        passes `ok`; "" when none does."""
        words = sentence.split()
        # A cut that keeps less than a third of the sentence says too little; leave the sentence to the page.
        floor = max(MIN_FRAGMENT_WORDS, len(words) // 3)
        low, high = floor - 1, len(words) - 1
        while low < high:  # fewer words never take more segments
            mid = (low + high + 1) // 2
            low, high = (mid, high) if ok(_cut(words, mid)) else (low, mid - 1)
        return _cut(words, low) if low >= floor and ok(_cut(words, low)) else ""

    def preview(self, alert: AlertData) -> list[Preview]:
        """Per language: exact text, encoding, segments, characters, units, the budget and why, whether the
        first instruction sentence fits it, and a cost estimate per message."""
        out = []
        budget = self.budget(alert)
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
                        "max_segments": budget.segments,
                        "budget_source": budget.source,
                        "budget_severity": budget.severity,
                        "fits": fitted.fits,
                        "truncated": fitted.truncated,
                        "action_fits": fitted.action_fits,
                        "first_instruction": fitted.first_instruction,
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

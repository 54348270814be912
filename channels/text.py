"""Plain-text helpers every message renderer shares: sentences, place names and what changed in an update."""

from __future__ import annotations

import re
from dataclasses import dataclass

from channels.base import AlertData
from templates import message_env
from templates.i18n import label

# Words after which a full stop does not end a sentence ("Jl. Sudirman", "Kel. Talise", "No. 5"). Words that
# also end sentences ("km", "dll", "kota") are left out: a missed split only keeps two sentences together.
_ABBREVIATIONS = frozenset(
    ["jl", "jln", "kel", "kec", "kab", "prov", "ds", "no", "rt", "rw", "gg", "kp", "dr", "drs", "ir", "prof",
     "yth", "bpk", "sdr", "tel", "telp", "mis", "vs", "e.g", "i.e", "a.l"]
)  # fmt: skip
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")
_ADMIN_PREFIX = re.compile(
    r"^(?:kota administrasi|kabupaten administrasi|kota|kabupaten|kab\.?|provinsi|prov\.?|"
    r"kecamatan|kec\.?|kelurahan|kel\.?|desa)\s+",
    re.IGNORECASE,
)
_END_PUNCT = ".!?…"
# The "Perubahan:"/"Change:" line is a summary; a longer one is cut at a word.
MAX_CHANGE_CHARS = 100


def sentences(text: str) -> list[str]:
    """`text` as its sentences, in order: split after . ! ? … followed by a space, but not after common
    abbreviations ("Jl.", "Kel.", "No.") or a single letter ("S. Palu")."""
    pieces = _SENTENCE_END.split(" ".join((text or "").split()))
    out: list[str] = []
    for piece in pieces:
        if not piece:
            continue
        if out and _ends_in_abbreviation(out[-1]):
            out[-1] = f"{out[-1]} {piece}"
        else:
            out.append(piece)
    return out


def _ends_in_abbreviation(sentence: str) -> bool:
    if not sentence.endswith("."):
        return False
    last = sentence.rsplit(" ", 1)[-1].rstrip(".").lstrip("(\"'").lower()
    return len(last) == 1 or last in _ABBREVIATIONS


def as_sentence(text: str) -> str:
    """`text` with single spaces, ending in a full stop unless it already ends in . ! ? or …; "" stays ""."""
    text = " ".join((text or "").split()).rstrip(" ,;:-")
    return text if not text or text[-1] in _END_PUNCT else f"{text}."


def place_names(area_desc: str) -> list[str]:
    """Place names in an area description without "Kota"/"Kabupaten" prefixes ("Kota Palu" → "Palu")."""
    names = []
    for part in re.split(r"[;,/]", area_desc or ""):
        name = _ADMIN_PREFIX.sub("", " ".join(part.split()))
        if name:
            names.append(name)
    return names


def area_parts(area_desc: str) -> list[str]:
    """The areas of an area description as listed (joined by "; " in AlertData.area_desc)."""
    return [" ".join(p.split()) for p in (area_desc or "").split(";") if p.strip()]


def names_the_area(headline: str, area_desc: str) -> bool:
    """True when the headline already names every place of the area ("Banjir di Palu" for "Kota Palu")."""
    names = place_names(area_desc)
    folded = headline.casefold()
    return bool(names) and all(n.casefold() in folded for n in names)


@dataclass(frozen=True, slots=True)
class Change:
    """What an Update changed for one language, as plain facts a template words."""

    severity: tuple[str, str] | None = None  # (before, after)
    added: tuple[str, ...] = ()  # areas added
    removed: tuple[str, ...] = ()  # areas removed
    sentence: str = ""  # the first new sentence of the description or instruction

    def __bool__(self) -> bool:
        return bool(self.severity or self.added or self.removed or self.sentence)


def _key(sentence: str) -> str:
    return " ".join(sentence.casefold().rstrip(_END_PUNCT).split())


def change_of(alert: AlertData, language: str) -> Change:
    """What `alert` changed against the version it replaces, in `language`; empty when there is none."""
    info = alert.info_for(language)
    before = alert.previous_info_for(info.language)
    if before is None:
        return Change()
    severity = (before.severity, info.severity) if before.severity != info.severity else None
    old_areas = area_parts(alert.previous_area_desc or "")
    new_areas = area_parts(alert.area_desc)
    added = tuple(a for a in new_areas if a not in old_areas) if old_areas else ()
    removed = tuple(a for a in old_areas if a not in new_areas)
    old = {_key(s) for s in sentences(before.description) + sentences(before.instruction)}
    sentence = next((s for s in sentences(info.description) + sentences(info.instruction) if _key(s) not in old), "")
    return Change(severity, added, removed, sentence.rstrip(_END_PUNCT))


def change_line(alert: AlertData, language: str) -> str:
    """What an Update (or correction) changed, as one short sentence in `language` for the "Perubahan:" /
    "Change:" line of every channel; "" for other messages or when nothing detectable changed."""
    if alert.msg_type not in ("Update", "Error"):
        return ""
    change = change_of(alert, language)
    if not change:
        return ""
    lang = "en" if alert.info_for(language).language.lower().startswith("en") else "id"
    template = message_env().get_template(f"change.{lang}.j2")
    lines = template.render(change=change, severity=lambda v: label("severity", v, lang)).splitlines()
    return as_sentence(shorten_words("; ".join(line.strip() for line in lines if line.strip()), MAX_CHANGE_CHARS))


def shorten_words(text: str, max_chars: int) -> str:
    """`text`, or its longest prefix of whole words ending in "…" within `max_chars` (at least one word)."""
    if len(text) <= max_chars:
        return text
    words = text.split()
    keep = len(words)
    while keep > 1 and len(" ".join(words[:keep]).rstrip(" ,;:-") + "…") > max_chars:
        keep -= 1
    return " ".join(words[:keep]).rstrip(" ,;:-") + "…"

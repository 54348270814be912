"""The WhatsApp alert templates (templates/messages/whatsapp/alerts.toml): which one an alert uses, its
variables and the text WhatsApp shows once they are filled in. Pure: no I/O after the file is read once.

WhatsApp's rules for a template message: the body at most 1,024 characters once filled; a variable never empty
and never holding a line break, a tab or more than four spaces in a row.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache

from templates import TEMPLATES_DIR

MAX_BODY = 1024
LANGUAGES = ("id", "en")
GENERAL = "umum"  # the template of any hazard the catalog does not name
EMPTY = "-"  # WhatsApp refuses an empty variable
_PLACEHOLDER = re.compile(r"\{\{(\d+)\}\}")
_SPACES = re.compile(r"\s+")


@lru_cache(maxsize=1)
def bodies() -> dict[str, str]:
    """Every template body by key "<hazard>.<language>", as submitted to Twilio's Content API."""
    with (TEMPLATES_DIR / "messages" / "whatsapp" / "alerts.toml").open("rb") as f:
        data = tomllib.load(f)
    return {f"{hazard}.{lang}": text for hazard, langs in data.items() for lang, text in langs.items()}


@lru_cache(maxsize=1)
def _hazard_names() -> dict[str, str]:
    with (TEMPLATES_DIR / "hazards" / "catalog.toml").open("rb") as f:
        catalog = tomllib.load(f)
    names: dict[str, str] = {}
    for key, entry in catalog.items():
        for field in ("name_id", "name_en"):
            if isinstance(entry.get(field), str):
                names[entry[field].casefold()] = key
    return names


def hazard_of(event: str) -> str:
    """The hazard key of an alert's event ("Banjir", "Flood" → "banjir"); GENERAL when the catalog has none."""
    key = _hazard_names().get(event.strip().casefold(), GENERAL)
    return key if f"{key}.id" in bodies() else GENERAL


def template_key(event: str, language: str) -> str:
    """The template an alert in `language` uses: "<hazard>.<language>", English for any language but Indonesian."""
    lang = language.split("-")[0].lower()
    return f"{hazard_of(event)}.{lang if lang in LANGUAGES else 'en'}"


def clean(value: str) -> str:
    """A value as a WhatsApp variable: whitespace runs (line breaks, tabs) as one space, never empty."""
    return _SPACES.sub(" ", value).strip() or EMPTY


def fill(key: str, variables: dict[str, str]) -> str:
    """The body of template `key` with its variables filled in, as the recipient sees it.

    Raises: KeyError for an unknown template or a variable it needs and was not given.
    """
    return _PLACEHOLDER.sub(lambda m: variables[m.group(1)], bodies()[key])


def placeholders(key: str) -> list[str]:
    """The variable numbers template `key` uses, in order."""
    return sorted(set(_PLACEHOLDER.findall(bodies()[key])), key=int)


@dataclass(frozen=True, slots=True)
class Filled:
    """A template filled in: its variables, the text, and whether anything had to be shortened to fit."""

    key: str
    variables: dict[str, str]
    text: str
    shortened: bool
    fits: bool


def fit(key: str, variables: dict[str, str], *, shorten: tuple[str, ...], ellipsis: str = "…") -> Filled:
    """Fill template `key`, shortening the variables named in `shorten` (in that order, each down to EMPTY if
    need be, cut at a word) until the text is at most MAX_BODY characters. Every other variable stays whole, so
    the action is never cut; `fits` is False when the text is still too long without them."""
    values = {k: clean(v) for k, v in variables.items()}
    text = fill(key, values)
    shortened = False
    for name in shorten:
        over = len(text) - MAX_BODY
        if over <= 0:
            break
        values[name] = _cut(values[name], len(values[name]) - over, ellipsis)
        shortened = True
        text = fill(key, values)
    return Filled(key, values, text, shortened, len(text) <= MAX_BODY)


def _cut(value: str, room: int, ellipsis: str) -> str:
    """`value` cut at a word to at most `room` characters with `ellipsis`; EMPTY when nothing useful fits."""
    if room >= len(value):
        return value
    if room <= len(ellipsis) + 1:
        return EMPTY
    cut = value[: room - len(ellipsis)]
    cut = cut.rsplit(" ", 1)[0] if " " in cut else cut
    return cut.rstrip(" ,.;:") + ellipsis if cut.strip() else EMPTY

"""Find a desa, kecamatan or kabupaten/kota from what a citizen typed: a Kemendagri code or a name, typos allowed.

Pure lookups over the gazetteer (no database). Names repeat across Indonesia ("Tondo" is a kelurahan in
Palu and a desa in Donggala and Parigi), so a name may be qualified by its kecamatan or kabupaten, after a
comma or simply after it ("Tondo, Mantikulore", "Tondo Kota Palu").
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache

from rapidfuzz import fuzz, process

from geo import gazetteer
from geo.gazetteer import Place

# Names closer than this (rapidfuzz ratio, 0-100) count as the same name misspelt.
NAME_CUTOFF = 85.0
# Matches within this many points of the best one are as good as it: the reply must ask which.
TIE_MARGIN = 1.0
MAX_OPTIONS = 3
LEVELS = frozenset({"kabupaten_kota", "kecamatan", "desa_kelurahan"})
# Words people put before a name that the gazetteer does not use for desa and kecamatan.
_PREFIXES = frozenset({"desa", "ds", "kelurahan", "kel", "kec", "kecamatan", "kampung", "dusun"})
# Kabupaten/kota names carry their kind ("Kabupaten Sigi", "Kota Palu"); abbreviations are spelt out.
_KIND_WORDS = {"kab": "kabupaten", "kabupaten": "kabupaten", "kota": "kota", "kodya": "kota"}
_NOT_ALNUM = re.compile(r"[^0-9a-z]+")


class Resolution(StrEnum):
    FOUND = "found"
    AMBIGUOUS = "ambiguous"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class PlaceMatch:
    """The outcome of a lookup: one place, several equally good options, or nothing."""

    resolution: Resolution
    place: Place | None = None
    options: tuple[Place, ...] = field(default_factory=tuple)


def normalise(text: str) -> str:
    """Lower case ASCII words without desa/kecamatan prefixes ("Kec. Palu-Barat" → "palu barat", "Kab Sigi" →
    "kabupaten sigi")."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = _NOT_ALNUM.sub(" ", ascii_text.lower()).split()
    while len(words) > 1 and words[0] in _PREFIXES:
        words = words[1:]
    if len(words) > 1 and words[0] in _KIND_WORDS:
        words[0] = _KIND_WORDS[words[0]]
    return " ".join(words)


def _names(place: Place) -> list[str]:
    full = normalise(place.nama)
    words = full.split()
    # "Palu" alone also names Kota Palu.
    if place.level == "kabupaten_kota" and len(words) > 1 and words[0] in _KIND_WORDS:
        return [full, " ".join(words[1:])]
    return [full]


@lru_cache(maxsize=1)
def _index() -> tuple[dict[str, tuple[Place, ...]], tuple[str, ...]]:
    by_name: dict[str, list[Place]] = defaultdict(list)
    # Read through the gazetteer's loader: it is the one place that opens the data file.
    for place in gazetteer._places().values():
        if place.level in LEVELS:
            for name in _names(place):
                by_name[name].append(place)
    frozen = {name: tuple(places) for name, places in by_name.items()}
    return frozen, tuple(frozen)


def _ancestors(place: Place) -> list[Place]:
    out = []
    code = place.kode_induk
    while code:
        parent = gazetteer.find_place(code)
        if parent is None:
            break
        out.append(parent)
        code = parent.kode_induk
    return out


def describe(place: Place) -> str:
    """A place with its kecamatan and kabupaten/kota, for a reply: "Tondo (Mantikulore, Kota Palu)"."""
    parents = [p.nama for p in _ancestors(place) if p.level != "provinsi"]
    return f"{place.nama} ({', '.join(parents)})" if parents else place.nama


def _candidates(name: str) -> list[Place]:
    by_name, names = _index()
    if not name:
        return []
    if name in by_name:
        return list(by_name[name])
    found = process.extract(name, names, scorer=fuzz.ratio, score_cutoff=NAME_CUTOFF, limit=25)
    if not found:
        return []
    best = max(score for _, score, _ in found)
    return [p for key, score, _ in found if score >= best - TIE_MARGIN for p in by_name[key]]


def _qualifies(place: Place, qualifier: str) -> bool:
    for parent in _ancestors(place):
        if qualifier == parent.kode or any(fuzz.ratio(qualifier, n) >= NAME_CUTOFF for n in _names(parent)):
            return True
    return False


def _outermost(places: list[Place]) -> list[Place]:
    unique = {p.kode: p for p in places}
    # A kecamatan and a desa of the same name inside it: the kecamatan covers both.
    return [p for p in unique.values() if not any(o != p.kode and gazetteer.contains(o, p.kode) for o in unique)]


def _match(name: str, qualifiers: list[str]) -> PlaceMatch:
    places = _candidates(name)
    for qualifier in qualifiers:
        places = [p for p in places if _qualifies(p, qualifier)]
    places = sorted(_outermost(places), key=lambda p: p.kode)
    if not places:
        return PlaceMatch(Resolution.UNKNOWN)
    if len(places) == 1:
        return PlaceMatch(Resolution.FOUND, places[0])
    return PlaceMatch(Resolution.AMBIGUOUS, options=tuple(places[:MAX_OPTIONS]))


def resolve_place(text: str) -> PlaceMatch:
    """The desa/kelurahan, kecamatan or kabupaten/kota `text` names (a Kemendagri code or a name, typos allowed).

    Ambiguous when several places fit equally well (the reply should ask for the kecamatan or kabupaten);
    unknown when nothing is close. Provinces are never a match: too wide for a personal subscription.
    """
    raw = " ".join(text.split()).strip(" .,;:")
    if gazetteer.is_well_formed(raw):
        place = gazetteer.find_place(raw)
        if place is None or place.level not in LEVELS:
            return PlaceMatch(Resolution.UNKNOWN)
        return PlaceMatch(Resolution.FOUND, place)
    parts = [normalise(p) for p in re.split(r"[,/;()]", raw)]
    parts = [p for p in parts if p]
    if not parts:
        return PlaceMatch(Resolution.UNKNOWN)
    name, qualifiers = parts[0], parts[1:]
    whole = _match(name, qualifiers)
    if whole.resolution is Resolution.FOUND:
        return whole
    # "Tondo Mantikulore": try shorter names with the words after them as a qualifier.
    words = name.split()
    fallback = whole
    for cut in range(len(words) - 1, 0, -1):
        split = _match(" ".join(words[:cut]), [normalise(" ".join(words[cut:])), *qualifiers])
        if split.resolution is Resolution.FOUND:
            return split
        if split.resolution is Resolution.AMBIGUOUS and fallback.resolution is Resolution.UNKNOWN:
            fallback = split
    return fallback

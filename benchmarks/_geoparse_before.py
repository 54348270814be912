"""The geoparser as it was before issue 24 (main at 2bf5ab7), kept only as the baseline of benchmarks/geoparse.py:
quadratic in repeated names (every pair of mentions compares every pair of candidates). Not used by the product."""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache

from rapidfuzz import fuzz, process

from geo import gazetteer
from geo.gazetteer import Place

LEVELS = ("kabupaten_kota", "kecamatan", "desa_kelurahan")
MAX_WORDS = 4
FUZZY_CUTOFF = 86.0
# Level words before a name, with the level they announce.
MARKERS = {
    "kec": "kecamatan",
    "kecamatan": "kecamatan",
    "kel": "desa_kelurahan",
    "kelurahan": "desa_kelurahan",
    "desa": "desa_kelurahan",
    "ds": "desa_kelurahan",
    "kab": "kabupaten_kota",
    "kabupaten": "kabupaten_kota",
    "kota": "kabupaten_kota",
    "kodya": "kabupaten_kota",
}
STREET_WORDS = frozenset({"jl", "jln", "jalan", "gg", "gang"})
# Abbreviations spelt out before matching.
EXPAND = {"kp": "kampung", "kmp": "kampung", "jkt": "jakarta", "jak": "jakarta", "tj": "tanjung", "pd": "pondok"}
# Single words that are also place names but mostly mean something else in a report.
_STOPWORD_TEXT = """
    air baru tengah utara selatan timur barat pasar besar kecil banjir hujan rumah jalan sungai kali depan belakang
    dalam luar atas bawah raya lama sekitar daerah wilayah mohon tolong bantuan sudah mulai masih sampai setinggi
    pintu masuk dekat arah jembatan gunung pantai laut pulau tanah merah putih hitam hijau indah jaya makmur sari
    mekar sejahtera harapan sentosa bahagia damai mulia lestari maju karya tani ujung tanjung muara batu kampung
    dusun desa kota rt rw no blok gang komplek perumahan cuacaekstrim drainaseburuk banjirkiriman lautpasang
    sekarang hari ini itu yang dan di ke dari pada untuk dengan karena akibat warga pompa naik turun surut genangan
    jati pulo kebon cempaka melati mawar kenanga anggrek
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_WORD = re.compile(r"[0-9a-z]+")
_RW = re.compile(r"\brw\s*\.?\s*0*(\d{1,3})\b")
_RT = re.compile(r"\brt\s*\.?\s*0*(\d{1,3})\b")
_RT_RW = re.compile(r"\b(?:rt\s*\.?\s*)?0*(\d{1,3})\s*/\s*(?:rw\s*\.?\s*)?0*(\d{1,3})\b")
_LEVEL_WEIGHT = {"desa_kelurahan": 3.0, "kecamatan": 2.5, "kabupaten_kota": 1.0}
_KIND_PREFIXES = (("kota", "administrasi"), ("kabupaten", "administrasi"), ("kota",), ("kabupaten",))


def _ascii_words(text: str) -> list[str]:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return _WORD.findall(ascii_text)


def normalise(text: str) -> str:
    """Lower-case ASCII words with common abbreviations spelt out ("Kp. Melayu" → "kampung melayu")."""
    return " ".join(EXPAND.get(w, w) for w in _ascii_words(text))


def _variants(place: Place) -> set[str]:
    full = normalise(place.nama)
    names = {full}
    if place.level == "kabupaten_kota":
        words = full.split()
        for prefix in _KIND_PREFIXES:
            if tuple(words[: len(prefix)]) == prefix and len(words) > len(prefix):
                names.add(" ".join(words[len(prefix) :]))
                names.add(f"{prefix[0]} " + " ".join(words[len(prefix) :]))
    return names


@lru_cache(maxsize=1)
def _index() -> tuple[dict[str, tuple[Place, ...]], dict[str, tuple[Place, ...]]]:
    """Places by normalised name, and by the same name with its spaces removed ("kramat jati" = "kramatjati")."""
    by_name: dict[str, list[Place]] = defaultdict(list)
    squashed: dict[str, list[Place]] = defaultdict(list)
    for place in gazetteer._places().values():
        if place.level not in LEVELS:
            continue
        for name in _variants(place):
            by_name[name].append(place)
            if " " in name:
                squashed[name.replace(" ", "")].append(place)
    return (
        {k: tuple(v) for k, v in by_name.items()},
        {k: tuple(v) for k, v in squashed.items()},
    )


@lru_cache(maxsize=16)
def _names_at(level: str, within: str | None) -> tuple[tuple[str, ...], tuple[Place, ...]]:
    names: list[str] = []
    places: list[Place] = []
    for place in gazetteer.places_at(level):
        if within and not gazetteer.contains(within, place.kode):
            continue
        for name in _variants(place):
            names.append(name)
            places.append(place)
    return tuple(names), tuple(places)


@dataclass(frozen=True, slots=True)
class Mention:
    """A stretch of the text that names a place, with every place it could mean."""

    text: str
    start: int  # word position
    words: int
    marker: str | None  # the level a marker word announced, if any
    candidates: tuple[Place, ...]
    fuzzy: bool = False


@dataclass(frozen=True, slots=True)
class ParsedLocation:
    """What the text says about where: the best place (or None), its kecamatan, and the other clues."""

    place: Place | None
    kecamatan: str | None
    mentions: tuple[Mention, ...] = field(default_factory=tuple)
    rw: str | None = None
    rt: str | None = None
    street: str | None = None
    ambiguous: bool = False

    @property
    def names(self) -> list[str]:
        """The place names found, in text order."""
        return [m.text for m in self.mentions]


def _in_scope(places: tuple[Place, ...], within: str | None, level: str | None = None) -> tuple[Place, ...]:
    return tuple(
        p
        for p in places
        if (within is None or gazetteer.contains(within, p.kode)) and (level is None or p.level == level)
    )


def _exact(phrase: list[str], within: str | None, level: str | None) -> tuple[Place, ...]:
    by_name, squashed = _index()
    key = " ".join(phrase)
    found = _in_scope(by_name.get(key, ()), within, level)
    if not found:
        found = _in_scope(squashed.get(key.replace(" ", ""), ()), within, level)
    return found


def _fuzzy(phrase: list[str], within: str | None, level: str) -> tuple[Place, ...]:
    names, places = _names_at(level, within)
    hit = process.extractOne(" ".join(phrase), names, scorer=fuzz.ratio, score_cutoff=FUZZY_CUTOFF)
    if hit is None:
        return ()
    return (places[hit[2]],)


def _street(words: list[str], start: int, within: str | None) -> str | None:
    """The street name after "Jl."/"Gang": up to four words, ending before a number's end, a marker, a common
    word or a place name ("Jl. Dermaga Klender" → "dermaga")."""
    out: list[str] = []
    for i, w in enumerate(words[start : start + 4], start=start):
        if w in MARKERS or w in STREET_WORDS or w in ("rt", "rw", "no", "nomor", "kampung") or w in STOPWORDS:
            break
        if out and not w.isdigit() and any(_exact(words[i : i + n], within, None) for n in (1, 2)):
            break
        out.append(w)
        if w.isdigit():
            break
    return " ".join(out) or None


def find_mentions(text: str, *, within: str | None = None) -> tuple[list[Mention], str | None]:
    """Every place name in `text` (longest match first, left to right) and the first street named."""
    words = [EXPAND.get(w, w) for w in _ascii_words(text)]
    mentions: list[Mention] = []
    street: str | None = None
    i = 0
    while i < len(words):
        word = words[i]
        if word in STREET_WORDS:
            # Place names inside a street's name still count ("Jl. Kampung Melayu Besar").
            street = street or _street(words, i + 1, within)
            i += 1
            continue
        marker = MARKERS.get(word)
        start = i + 1 if marker else i
        matched = False
        for n in range(min(MAX_WORDS, len(words) - start), 0, -1):
            phrase = words[start : start + n]
            if any(w in ("rt", "rw") for w in phrase):
                continue
            places = _exact(phrase, within, marker)
            if not places and marker is None and word == "kampung":
                continue
            if places and n == 1 and marker is None and (phrase[0] in STOPWORDS or len(phrase[0]) < 4):
                continue
            fuzzy = False
            if not places and marker is not None and n <= 3:
                places = _fuzzy(phrase, within, marker)
                fuzzy = bool(places)
                if places and n == 1 and len(phrase[0]) < 4:
                    places = ()
            if places:
                mentions.append(Mention(" ".join(phrase), start, n, marker, places, fuzzy))
                i = start + n
                matched = True
                break
        if not matched:
            i += 1
    return mentions, street


def _related(a: Place, b: Place) -> bool:
    return a.kode != b.kode and (gazetteer.contains(a.kode, b.kode) or gazetteer.contains(b.kode, a.kode))


def _kecamatan_of(place: Place) -> str | None:
    if place.level == "kecamatan":
        return place.kode
    if place.level == "desa_kelurahan":
        return place.kode_induk
    return None


def parse_location(text: str, *, within: str | None = None) -> ParsedLocation:
    """The place `text` most likely names, with its kecamatan, the RT/RW and the street (any may be None).

    Ambiguous when the best candidates are equally good and lie in different kecamatan (kecamatan then None).
    """
    mentions, street = find_mentions(text, within=within)
    low = " ".join(_ascii_words(text))
    rw_match = _RW.search(low)
    rt_match = _RT.search(low)
    pair = _RT_RW.search(low) if not rw_match else None
    rw = rw_match.group(1) if rw_match else (pair.group(2) if pair else None)
    rt = rt_match.group(1) if rt_match else (pair.group(1) if pair else None)
    if not mentions:
        return ParsedLocation(None, None, (), rw, rt, street)
    scored: dict[str, float] = defaultdict(float)
    supported: set[str] = set()
    places: dict[str, Place] = {}
    for m in mentions:
        for p in m.candidates:
            score = _LEVEL_WEIGHT[p.level] + 0.5 * m.words
            if m.marker == p.level:
                score += 2.0
            if m.fuzzy:
                score -= 1.0
            # Agreement: another mention names a place that contains, or lies inside, this one.
            support = sum(1 for o in mentions if o is not m and any(_related(p, q) for q in o.candidates))
            score += 3.0 * support
            if support:
                supported.add(p.kode)
            # A name that means many places says little on its own.
            score -= 0.2 * min(len(m.candidates) - 1, 10)
            scored[p.kode] = max(scored[p.kode], score)
            places[p.kode] = p
    best = max(scored.values())
    top = [places[k] for k, s in scored.items() if s >= best - 1e-9]
    kecamatans = {_kecamatan_of(p) for p in top}
    if len(top) == 1:
        place = top[0]
        # "Kp. Melayu, Kec. Jatinegara": the kecamatan scores best, the kelurahan inside it is more precise.
        inside = [
            p for k, p in places.items() if k in supported and k != place.kode and gazetteer.contains(place.kode, k)
        ]
        if len(inside) == 1:
            place = inside[0]
        return ParsedLocation(place, _kecamatan_of(place), tuple(mentions), rw, rt, street)
    if len(kecamatans) == 1 and None not in kecamatans:
        place = sorted(top, key=lambda p: p.kode)[0]
        return ParsedLocation(place, kecamatans.pop(), tuple(mentions), rw, rt, street, ambiguous=True)
    return ParsedLocation(None, None, tuple(mentions), rw, rt, street, ambiguous=True)


def naive_kecamatan(text: str, *, within: str | None = None) -> str | None:
    """Baseline: the first kecamatan whose exact official name appears in the text, else None."""
    low = f" {' '.join(_ascii_words(text))} "
    names, places = _names_at("kecamatan", within)
    for name, place in zip(names, places, strict=True):
        if f" {name} " in low:
            return place.kode
    return None

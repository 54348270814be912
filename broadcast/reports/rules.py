"""Pure report rules: hazard keywords, depth cues, language, near-duplicates, triage transitions, distances."""

from __future__ import annotations

import bisect
import itertools
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from rapidfuzz import fuzz

STATES = ("new", "verified", "dismissed", "actioned")
# Triage: a dismissed report can be reopened; an actioned one is finished.
TRANSITIONS: dict[str, frozenset[str]] = {
    "new": frozenset({"verified", "dismissed", "actioned"}),
    "verified": frozenset({"actioned", "dismissed"}),
    "dismissed": frozenset({"new", "verified"}),
    "actioned": frozenset(),
}
SOURCES = ("sms", "x", "web", "api")

# Keyword rules (Bahasa Indonesia and English): (regex on normalised text, weight). Strong words weigh 1.
HAZARD_RULES: dict[str, tuple[tuple[str, float], ...]] = {
    "banjir_bandang": ((r"banjir bandang", 2.0), (r"flash flood", 2.0), (r"air bah", 1.5)),
    "banjir": (
        (r"\b(ke)?banjir(an)?\b", 1.0),
        (r"banjir ?kiriman|banjir ?rob|\brob\b", 0.8),
        (r"\bflood(s|ed|ing)?\b", 1.0),
        (r"\bair (naik|masuk|meluap)|meluap|luapan", 0.6),
        (
            r"\bsepinggang|selutut|sedada|seleher|semata kaki|sebetis|sepaha|sedengkul"
            r"|\b(?:se ?tinggi|sampai|hingga) (?:mata kaki|betis|lutut|paha|pinggang|dada|leher)\b",
            0.6,
        ),
    ),
    "genangan": (
        (r"\bgenangan|tergenang|menggenang|\bgenang\b", 1.0),
        (r"\bwaterlogg|\bpuddle|standing water", 1.0),
    ),
    "longsor": ((r"\b(tanah )?longsor(an)?\b", 1.0), (r"\blandslides?\b|\bmudslides?\b", 1.0), (r"tebing runtuh", 0.8)),
    "gempa": (
        (r"\bgempa( bumi)?\b|\blindu\b", 1.0),
        (r"\bearthquakes?\b|\bquake\b|\btremors?\b", 1.0),
        (r"guncangan", 0.6),
    ),
    "tsunami": ((r"\btsunami\b", 1.5), (r"air laut surut", 0.8)),
    "kebakaran": (
        (r"\bkebakaran\b|\bterbakar\b", 1.0),
        (r"\bfire\b|\bburning\b", 1.0),
        (r"\bapi\b|\bkobaran\b", 0.4),
        (r"karhutla|kebakaran hutan", 1.5),
    ),
    "erupsi": (
        (r"\berupsi\b|\bmeletus\b|letusan", 1.0),
        (r"awan panas|\blahar\b|abu vulkanik|hujan abu|gunung api", 1.0),
        (r"\beruption\b|\bvolcan(o|ic)\b|\bash ?fall\b", 1.0),
    ),
    "angin": (
        (r"puting beliung|angin kencang|\bbadai\b|angin ribut|\blesus\b", 1.0),
        (r"\btornado\b|\bstrong winds?\b|\bstorm\b|\bwhirlwind\b|\bgale\b", 1.0),
        (r"pohon tumbang|atap terbang", 0.6),
    ),
    "kekeringan": ((r"\bkekeringan\b|krisis air bersih", 1.0), (r"\bdrought\b", 1.0)),
}
_COMPILED = {h: tuple((re.compile(p), w) for p, w in rules) for h, rules in HAZARD_RULES.items()}
# Which hazard message template an incident's draft alert starts from.
HAZARD_TEMPLATES = {
    "banjir": "banjir",
    "genangan": "banjir",
    "banjir_bandang": "banjir_bandang",
    "longsor": "tanah_longsor",
    "gempa": "gempa_bumi",
    "tsunami": "tsunami",
    "erupsi": "erupsi_gunung_api",
    "angin": "angin_puting_beliung",
    "kekeringan": "kekeringan",
    "kebakaran": "karhutla",
}

# Flood depth said with the body (typical adult), in cm: "selutut", "se-lutut", "setinggi lutut", "sampai dada",
# "hingga atap". A bare body word needs such a cue ("atap terbang" is wind damage, not depth), except the
# "se-" forms people write as one word.
BODY_DEPTHS = {
    "mata kaki": 10,
    "betis": 30,
    "lutut": 50,
    "dengkul": 50,
    "paha": 70,
    "pinggang": 100,
    "perut": 100,
    "pinggul": 90,
    "dada": 130,
    "leher": 150,
    "dagu": 150,
    "kepala": 170,
    "atap": 250,
    "genteng": 250,
}
DEPTH_WORDS = {f"se{part.replace(' ', '')}": cm for part, cm in BODY_DEPTHS.items()} | {
    "semata kaki": 10,
    "mata kaki": 10,
    "sedengkul": 50,
}
_BODY = "|".join(sorted((p.replace(" ", " ?") for p in BODY_DEPTHS), key=len, reverse=True))
# Cue words before a body part: "setinggi", "sedalam", "sampai", "hingga", "mencapai", "sebatas", "se-", "se ".
_DEPTH_CUE = r"(?:se ?tinggi|sedalam|sampai|sampe|smpai|smp|hingga|mencapai|sebatas|seukuran|di atas|diatas|se)"
_DEPTH_WORDS_RE = re.compile(
    r"\b" + _DEPTH_CUE + r" ?(?:" + _BODY + r")\b|\b(?:" + "|".join(sorted(DEPTH_WORDS, key=len, reverse=True)) + r")\b"
)
_DEPTH_PART_RE = re.compile(r"(" + _BODY + r")\b")
# "50 cm", "1,5 m", "50-90cm" (the upper figure), "setinggi 2 meter"; not a distance ("200 meter dari ...",
# "sepanjang 100 m") and not beyond 10 m.
_DEPTH_NUM_RE = re.compile(
    r"(?<![\w.])(?:(\d+(?:\.\d+)?)\s*(?:-|s/?d|sampai|hingga|sd)\s*)?(\d+(?:\.\d+)?)\s*"
    r"(cm|centi\w*|senti\w*|m|meter|mtr)\b(?!\s*(?:dari|dr|jauh|lagi|sebelum|setelah|ke)\b)"
)
_DISTANCE_BEFORE = re.compile(r"(?:sepanjang|panjang|jarak|lebar|radius|sekitar jarak)\s*(?:kurang lebih|\+-|±)?\s*$")
SEVERITY_STEPS = ((30, "ringan"), (70, "sedang"), (150, "berat"))  # upper bounds in cm, else "sangat_berat"

_ID_WORDS = frozenset(
    [
        "yang",
        "di",
        "dan",
        "sudah",
        "banjir",
        "air",
        "rumah",
        "jalan",
        "tolong",
        "mohon",
        "sejak",
        "ini",
        "itu",
        "ada",
        "tidak",
        "belum",
        "masuk",
        "naik",
        "warga",
        "kami",
    ]
)
_EN_WORDS = frozenset(
    [
        "the",
        "is",
        "in",
        "and",
        "flood",
        "water",
        "house",
        "street",
        "please",
        "help",
        "since",
        "this",
        "there",
        "not",
        "yet",
        "our",
        "we",
    ]
)
_NOT_ALNUM = re.compile(r"[^0-9a-z ]+")


def normalise_text(text: str) -> str:
    """Lower-case ASCII with punctuation as spaces, for keyword rules."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return " ".join(_NOT_ALNUM.sub(" ", ascii_text).split())


@dataclass(frozen=True, slots=True)
class HazardGuess:
    hazard: str | None
    confidence: float


def hazard_scores(texts: Sequence[str]) -> list[dict[str, float]]:
    """Keyword scores per hazard for each normalised text (see normalise_text), over the whole batch at once: each
    rule's pattern runs once over the texts joined by newlines. Equal to searching every text on its own, because
    no rule can match a newline (normalised text holds only [0-9a-z ])."""
    joined = "\n".join(texts)
    starts = list(itertools.accumulate((len(t) + 1 for t in texts[:-1]), initial=0))
    scores: list[dict[str, float]] = [{} for _ in texts]
    for hazard, rules in _COMPILED.items():
        for pattern, weight in rules:
            last = -1
            for match in pattern.finditer(joined):
                i = bisect.bisect_right(starts, match.start()) - 1
                if i != last:  # a rule counts once per text, however often it matches
                    scores[i][hazard] = scores[i].get(hazard, 0.0) + weight
                    last = i
    return scores


def guess_hazard(scores: dict[str, float]) -> HazardGuess:
    """The hazard a text's keyword scores point to, with a confidence in [0, 1]."""
    scores = {h: s for h, s in scores.items() if s}
    if not scores:
        return HazardGuess(None, 0.0)
    # A flash flood is also a flood; a standing-water report that also says banjir is a flood.
    if "banjir_bandang" in scores:
        scores.pop("banjir", None)
    best = max(scores, key=lambda h: (scores[h], h))
    total = sum(scores.values())
    confidence = (1 - 0.5 ** scores[best]) * (scores[best] / total)
    return HazardGuess(best, round(min(confidence, 0.99), 2))


def classify_hazard(text: str) -> HazardGuess:
    """The hazard the text is about by keyword rules (id + en), with a confidence in [0, 1]."""
    return guess_hazard(hazard_scores([normalise_text(text)])[0])


def depth_cm(text: str) -> int | None:
    """The flood depth the text states ("50 cm", "1,5 m", "50-90cm", "sepinggang", "setinggi lutut", "se-dada",
    "sampai atap"), the deepest if several, else None. Distances ("200 meter dari sini") are not depths."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    low = re.sub(r"(?<=\d),(?=\d)", ".", ascii_text)
    found: list[int] = []
    for match in _DEPTH_NUM_RE.finditer(low):
        if _DISTANCE_BEFORE.search(low[: match.start()]):
            continue
        value = float(match.group(2))
        cm = value if match.group(3).startswith(("c", "s")) else value * 100
        if 0 < cm <= 1000:
            found.append(round(cm))
    words = normalise_text(text.replace("-", ""))
    for match in _DEPTH_WORDS_RE.finditer(words):
        phrase = match.group()
        if phrase in DEPTH_WORDS:
            found.append(DEPTH_WORDS[phrase])
            continue
        part = _DEPTH_PART_RE.search(phrase[2:] if phrase.startswith("se") else phrase)
        if part is not None:
            found.append(BODY_DEPTHS[part.group(1).replace("matakaki", "mata kaki")])
    return max(found) if found else None


def severity_for(depth: int | None) -> str | None:
    """Severity band of a flood depth: ringan (<30 cm), sedang, berat, sangat_berat (≥150 cm)."""
    if depth is None:
        return None
    for limit, name in SEVERITY_STEPS:
        if depth < limit:
            return name
    return "sangat_berat"


def detect_language(text: str) -> str | None:
    """ "id" or "en" by common words, None when it cannot tell."""
    words = set(normalise_text(text).split())
    id_hits, en_hits = len(words & _ID_WORDS), len(words & _EN_WORDS)
    if id_hits == en_hits == 0:
        return None
    return "en" if en_hits > id_hits else "id"


DUPLICATE_SIMILARITY = 88.0
DUPLICATE_WINDOW = timedelta(hours=6)


def is_near_duplicate(a: str, b: str) -> bool:
    """True when two texts say the same thing (rapidfuzz token-set ratio ≥ 88 on normalised text)."""
    return similar_normalised(normalise_text(a), normalise_text(b))


def similar_normalised(na: str, nb: str) -> bool:
    """is_near_duplicate for texts already normalised (normalise_text)."""
    if not na or not nb:
        return na == nb
    return fuzz.token_set_ratio(na, nb) >= DUPLICATE_SIMILARITY


# Incidents: reports about the same hazard within this distance and time of an incident join it.
CLUSTER_RADIUS_M = 1000.0
CLUSTER_WINDOW = timedelta(hours=6)


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_000 * math.asin(math.sqrt(a))


def same_incident(
    *,
    hazard: str,
    lat: float,
    lon: float,
    at: datetime,
    street: str | None,
    kecamatan: str | None,
    incident_hazard: str,
    incident_lat: float,
    incident_lon: float,
    incident_last_at: datetime,
    incident_street: str | None,
    incident_kecamatan: str | None,
) -> float | None:
    """The distance to an incident when a report belongs to it (same hazard, close in time, within the radius or
    on the same street in the same kecamatan), else None."""
    related = {hazard, incident_hazard} <= {"banjir", "genangan"} or hazard == incident_hazard
    if not related or abs(at - incident_last_at) > CLUSTER_WINDOW:
        return None
    d = distance_m(lat, lon, incident_lat, incident_lon)
    if d <= CLUSTER_RADIUS_M:
        return d
    if street and street == incident_street and kecamatan and kecamatan == incident_kecamatan:
        return d
    return None


@dataclass(frozen=True, slots=True)
class IncidentExtent:
    """What an incident's counted reports add up to: how many, their centre, time span and deepest water."""

    count: int
    lat: float | None
    lon: float | None
    first_at: datetime | None
    last_at: datetime | None
    max_depth_cm: int | None


def incident_extent(
    points: Sequence[tuple[float | None, float | None]],
    times: Sequence[datetime],
    depths: Sequence[int | None],
) -> IncidentExtent:
    """An incident's extent from its counted reports (duplicates left out by the caller). The centre is the mean
    by math.fsum (exactly rounded), so it does not depend on the order the reports come in."""
    lats = [lat for lat, _ in points if lat is not None]
    lons = [lon for _, lon in points if lon is not None]
    known = [d for d in depths if d is not None]
    return IncidentExtent(
        count=len(times),
        lat=math.fsum(lats) / len(lats) if lats else None,
        lon=math.fsum(lons) / len(lons) if lons else None,
        first_at=min(times) if times else None,
        last_at=max(times) if times else None,
        max_depth_cm=max(known) if known else None,
    )

"""Find Indonesian place names in free text: desa/kelurahan, kecamatan, kabupaten/kota, RT/RW and streets.

Pure lookups over the gazetteer (no database). Words people put before a name ("Kec. Jatinegara", "kel klender",
"Kab. Sigi") say which level they mean, and "Kelurahan"/"Desa" also which kind (a kelurahan's code is 1xxx, a
desa's 2xxx); "Kp"/"Kampung" is part of many kelurahan names ("Kampung Melayu") and is spelt out. Exact names
are found anywhere in the text; a name after a marker may be misspelt (rapidfuzz). A name never runs across
punctuation or a marker ("Kel. Birobuli Utara, Kec. Palu Selatan" is two places). A street runs from "Jl."/"Gang"
to the next marker, punctuation or number ("Jl. Soekarno Hatta" is one street). Names repeat across Indonesia, so
candidates are ranked by how well they agree with each other (a kelurahan inside the kecamatan the text also
names wins); ties are broken by the sender's registered area, then the jurisdiction the report arrived through,
then the kind the marker named; every answer carries the reason for it. `within` (a code prefix such as "31")
limits the search to one region.

Linear in the text: each distinct name is scored once, with at most MAX_CANDIDATES places, and the work per
report is capped (MAX_MENTIONS names, MAX_FUZZY misspelling searches, MAX_WORK candidate evaluations); when a cap
is hit the answer says so.
"""

from __future__ import annotations

import csv
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
# Work bounds per report. Each distinct name is looked up and scored once, whatever it repeats.
MAX_CANDIDATES = 32  # places kept per distinct name (those agreeing with the hints and other names first)
MAX_MENTIONS = 24  # distinct names scored per report
MAX_FUZZY = 6  # misspelt-name searches per report (each scans every name of one level)
MAX_WORK = 2000  # candidate evaluations per report
MAX_STREET_WORDS = 5
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
# Marker words that also say the kind: a kelurahan (urban, code digits 1xxx) or a desa (rural, 2xxx).
KIND_WORDS = {"kel": "1", "kelurahan": "1", "desa": "2", "ds": "2"}
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
# "Kali Krukut", "Sungai Cakung": a river named after a place runs through many; not where the report is.
RIVER_WORDS = frozenset({"kali", "sungai", "kalinya", "sungainya"})
# "Cipinang Indah", "Kapuk Mas", "Taman Palem Lestari": a housing estate or mall named after a place is often
# outside it; such a name supports other names but does not place a report on its own.
DEVELOPMENT_WORDS = frozenset(
    {"indah", "mas", "permai", "garden", "residence", "regency", "asri", "elok", "lestari", "park", "city", "hills"}
)
# "Stasiun Mangga Besar", "mall Klender", "Ps. Induk Kramat Jati", "underpass Kemayoran": a station, market,
# mall or road structure named after a kelurahan is often outside it (at its border or across a main road); such
# a name right after the landmark word supports other names but does not place a report on its own.
LANDMARK_WORDS = frozenset(
    {
        "stasiun", "st", "mall", "mal", "plaza", "pasar", "ps", "terminal", "halte", "underpass", "flyover",
        "tol", "spbu", "bensin", "simpang", "perempatan", "pertigaan", "bundaran",
    }
)  # fmt: skip
# Words that end a street's name (besides markers, punctuation and a house/street number).
_STREET_END_TEXT = """
    rt rw no nomor blok kampung komp komplek kompleks perum perumahan di ke dari dekat depan belakang samping
    sebelah arah mengarah menuju sampai hingga yang yg dan atau banjir genangan tergenang menggenang air sudah sdh
    udh masih msh mulai setinggi sedalam sekitar tepatnya lokasi wilayah daerah sejak pukul jam tolong mohon tidak
    belum blm ada ini itu meluap naik surut sepanjang tergenangi terendam macet kelurahan kecamatan kota kabupaten
    selutut sepinggang sedada seleher sebetis sepaha sedengkul semata jakarta
"""
STREET_END = frozenset(_STREET_END_TEXT.split()) | frozenset(MARKERS) | STREET_WORDS
# Words after which "." is an abbreviation's full stop, not the end of a sentence.
_ABBREVIATIONS = frozenset(MARKERS) | STREET_WORDS | frozenset(EXPAND) | {"komp", "perum", "no", "rt", "rw", "ps", "rs"}
# Characters that end a name; "." too unless it closes an abbreviation.
_BREAKS = frozenset(',;:!?()[]{}/\\|"\n#@*+=<>')
_TOKEN = re.compile(r"[a-z]+|[0-9]+|\n|[^\s0-9a-z]")
_HANDLE = re.compile(r"@\w+")
_ROMAN = re.compile(r"^(?:i{1,3}|iv|vi{0,3}|ix|xi{0,3}|xiv|xv)$")
_WORD = re.compile(r"[0-9a-z]+")
_RW = re.compile(r"\brw\s*\.?\s*0*(\d{1,3})\b")
_RT = re.compile(r"\brt\s*\.?\s*0*(\d{1,3})\b")
_RT_RW = re.compile(r"\b(?:rt\s*\.?\s*)?0*(\d{1,3})\s*/\s*(?:rw\s*\.?\s*)?0*(\d{1,3})\b")
_LEVEL_WEIGHT = {"desa_kelurahan": 3.0, "kecamatan": 2.5, "kabupaten_kota": 1.0}
# A same-name place inside the hints may score this much below the best (a kecamatan vs a desa) and still win.
LEVEL_SLACK = 0.5
_LEVEL_NAME = {
    "desa_kelurahan": ("desa/kelurahan", "desa/kelurahan"),
    "kecamatan": ("kecamatan", "kecamatan"),
    "kabupaten_kota": ("kabupaten/kota", "regency/city"),
}
_WEAK_REASONS = {
    "development": ("hanya muncul dalam nama perumahan/tempat", "appears only in an estate's or landmark's name"),
    "landmark": (
        "hanya muncul dalam nama stasiun/pasar/mal/jalan layang",
        "appears only in a station's, market's, mall's or road structure's name (an estate's or landmark's name)",
    ),
}
_DIRECTIONS = frozenset({"utara", "selatan", "timur", "barat", "tengah"})
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
def known_areas() -> dict[str, Place]:
    """Well-known Jakarta area names that are no official name ("Kampung Pulo", "Kemang", "Sunter", "Green
    Garden"), each with the kelurahan, or the kecamatan when it spans several, it lies in (geo/data/
    jakarta_areas.csv, compiled by hand for this project: see docs/geocoding.md)."""
    out: dict[str, Place] = {}
    with (gazetteer.DATA / "jakarta_areas.csv").open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            place = gazetteer.find_place(row["kode"])
            if place is None:
                raise ValueError(f"jakarta_areas.csv: unknown code {row['kode']}")
            out[normalise(row["name"])] = place
    return out


@lru_cache(maxsize=2)
def _index(areas: bool) -> tuple[dict[str, tuple[Place, ...]], dict[str, tuple[Place, ...]]]:
    """Places by normalised name, and by the same name with its spaces removed ("kramat jati" = "kramatjati").
    A name without its last word of direction also names the places it was split into ("Tanjung Duren" =
    Tanjung Duren Utara and Tanjung Duren Selatan), unless it is a place's own name. With `areas`, the
    well-known area names (known_areas) name the places they lie in too."""
    if areas:
        official, official_squashed = _index(False)
        by_name_areas = dict(official)
        squashed_areas = dict(official_squashed)
        for name, place in known_areas().items():
            by_name_areas[name] = (*by_name_areas.get(name, ()), place)
            if " " in name:
                glued = name.replace(" ", "")
                squashed_areas[glued] = (*squashed_areas.get(glued, ()), place)
        return by_name_areas, squashed_areas
    by_name: dict[str, list[Place]] = defaultdict(list)
    squashed: dict[str, list[Place]] = defaultdict(list)
    split: dict[str, list[Place]] = defaultdict(list)
    for place in gazetteer._places().values():
        if place.level not in LEVELS:
            continue
        for name in _variants(place):
            by_name[name].append(place)
            if " " in name:
                squashed[name.replace(" ", "")].append(place)
            words = name.split()
            if place.level != "kabupaten_kota" and len(words) > 1 and words[-1] in _DIRECTIONS:
                split[" ".join(words[:-1])].append(place)
    for name, places in split.items():
        if name not in by_name and name not in STOPWORDS and len(name) >= 4:
            by_name[name] = places
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
    """A stretch of the text that names a place, with every place it could mean (at most MAX_CANDIDATES).

    `weak` says why the name alone does not place a report: "street" (inside a street's name), "development"
    (a housing estate or mall named after the place).
    """

    text: str
    start: int  # word position
    words: int
    marker: str | None  # the level a marker word announced, if any
    candidates: tuple[Place, ...]
    fuzzy: bool = False
    weak: str | None = None
    kind: str | None = None  # "1" kelurahan or "2" desa when the marker word said so


@dataclass(frozen=True, slots=True)
class ParsedLocation:
    """What the text says about where: the best place (or None), its kecamatan, the other clues, and why.

    `reason` explains the choice (or why there is none) in Indonesian, then English; `capped` is True when a
    work bound cut the search short (the reason names it); `work` counts the candidate evaluations spent.
    """

    place: Place | None
    kecamatan: str | None
    mentions: tuple[Mention, ...] = field(default_factory=tuple)
    rw: str | None = None
    rt: str | None = None
    street: str | None = None
    ambiguous: bool = False
    reason: str = ""
    capped: bool = False
    work: int = 0

    @property
    def names(self) -> list[str]:
        """The place names found, in text order."""
        return [m.text for m in self.mentions]


class _Why:
    """Reasons collected in both languages; rendered "Indonesian / English"."""

    def __init__(self) -> None:
        self.id: list[str] = []
        self.en: list[str] = []

    def add(self, id_text: str, en_text: str) -> None:
        self.id.append(id_text)
        self.en.append(en_text)

    def text(self) -> str:
        return f"{'; '.join(self.id)} / {'; '.join(self.en)}" if self.id else ""


@lru_cache(maxsize=1)
def _first_words() -> frozenset[str]:
    """The first words of place names (four letters or more), to split "di" off "dimangga"."""
    by_name, _ = _index(True)
    return frozenset(w for w in (name.split()[0] for name in by_name) if len(w) >= 4 and w not in STOPWORDS)


def _glued_di(word: str) -> str | None:
    rest = word[2:]
    if word.startswith("di") and len(rest) >= 4 and word not in _index(True)[0] and rest in _first_words():
        return rest
    return None


def _tokens(text: str) -> tuple[list[str], list[bool]]:
    """Words (abbreviations spelt out) and, per word, whether punctuation separates it from the word before."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    # "@lurahpelamampang": an account people tag, not where they are.
    ascii_text = _HANDLE.sub(" , ", ascii_text)
    words: list[str] = []
    breaks: list[bool] = []
    pending = False
    previous = ""
    for match in _TOKEN.finditer(ascii_text):
        piece = match.group()
        if piece[0].isascii() and piece[0].isalnum():
            glued = _glued_di(piece)
            if glued:  # "dimangga besar": "di" written onto the name
                words.append("di")
                breaks.append(pending)
                pending = False
                piece = glued
            words.append(EXPAND.get(piece, piece))
            breaks.append(pending)
            pending = False
            previous = piece
        elif piece in _BREAKS or (piece == "." and previous not in _ABBREVIATIONS):
            pending = True
    return words, breaks


def _in_scope(places: tuple[Place, ...], within: str | None, level: str | None = None) -> tuple[Place, ...]:
    return tuple(
        p
        for p in places
        if (within is None or gazetteer.contains(within, p.kode)) and (level is None or p.level == level)
    )


def _exact(phrase: list[str], within: str | None, level: str | None, areas: bool = True) -> tuple[Place, ...]:
    by_name, squashed = _index(areas)
    key = " ".join(phrase)
    found = _in_scope(by_name.get(key, ()), within, level)
    if not found:
        glued = key.replace(" ", "")
        found = _in_scope(squashed.get(glued, ()), within, level)
        if not found and glued != key:
            found = _in_scope(by_name.get(glued, ()), within, level)
    return found


def _fuzzy(phrase: list[str], within: str | None, level: str) -> tuple[Place, ...]:
    names, places = _names_at(level, within)
    hit = process.extractOne(" ".join(phrase), names, scorer=fuzz.ratio, score_cutoff=FUZZY_CUTOFF)
    if hit is None:
        return ()
    return (places[hit[2]],)


def _inside_any(place: Place, areas: tuple[str, ...]) -> bool:
    return any(gazetteer.contains(a, place.kode) for a in areas)


class _Scan:
    """One pass over a report's words: each distinct phrase is looked up once; misspelling searches are capped."""

    def __init__(
        self, words: list[str], breaks: list[bool], within: str | None, hints: tuple[str, ...], areas: bool = True
    ) -> None:
        self.words = words
        self.areas = areas
        self.breaks = breaks
        self.within = within
        self.hints = hints
        self._exact: dict[tuple[str, str | None], tuple[Place, ...]] = {}
        self._fuzzy: dict[tuple[str, str], tuple[Place, ...]] = {}
        self.fuzzy_left = MAX_FUZZY
        self.capped: list[str] = []

    def exact(self, start: int, n: int, level: str | None) -> tuple[Place, ...]:
        key = (" ".join(self.words[start : start + n]), level)
        if key not in self._exact:
            self._exact[key] = _exact(self.words[start : start + n], self.within, level, self.areas)
        return self._exact[key]

    def fuzzy(self, start: int, n: int, level: str) -> tuple[Place, ...]:
        key = (" ".join(self.words[start : start + n]), level)
        if key not in self._fuzzy:
            if self.fuzzy_left <= 0:
                if "fuzzy" not in self.capped:
                    self.capped.append("fuzzy")
                return ()
            self.fuzzy_left -= 1
            self._fuzzy[key] = _fuzzy(self.words[start : start + n], self.within, level)
        return self._fuzzy[key]

    def span(self, start: int, most: int = MAX_WORDS) -> int:
        """How many words from `start` may form one name: no punctuation, marker, street word or RT/RW inside."""
        n = 0
        while n < most and start + n < len(self.words):
            w = self.words[start + n]
            if n and self.breaks[start + n]:
                break
            if w in MARKERS or w in STREET_WORDS or w in ("rt", "rw"):
                break
            n += 1
        return n

    def street(self, start: int) -> tuple[str | None, int]:
        """The street name after "Jl."/"Gang" and where it ends: up to the next marker, punctuation, common word
        or number (kept: "Jl. Kebon Jeruk 11"), or a kelurahan/kecamatan name after it ("Jl. Dermaga Klender")."""
        out: list[str] = []
        j = start
        while j < len(self.words) and len(out) < MAX_STREET_WORDS:
            w = self.words[j]
            if out and self.breaks[j]:
                break
            if w in STREET_END:
                break
            numbered = w.isdigit() or bool(_ROMAN.match(w))
            if out and not numbered and self._ends_street(j):
                break
            out.append(w)
            j += 1
            if numbered and len(out) > 1:
                break
        return (" ".join(out) or None), j

    def _ends_street(self, j: int) -> bool:
        # A desa of the same name far away does not cut a street ("Jl. Soekarno Hatta": Hatta is a desa in
        # Lampung), nor does a word many places share ("Jl. Kebon Jeruk 11": eleven Jeruk); the name of a
        # kelurahan, kecamatan or kota does, and so does any place inside the hints.
        for n in range(min(3, self.span(j)), 0, -1):
            if n == 1 and (self.words[j] in STOPWORDS or len(self.words[j]) < 4):
                continue
            places = self.exact(j, n, None)
            if any(_inside_any(p, self.hints) for p in places):
                return True
            if len(places) <= 2 and any(p.level != "desa_kelurahan" or p.kode[-4] == "1" for p in places):
                return True
        return False

    def mentions(self) -> tuple[list[Mention], str | None]:
        words = self.words
        found: list[Mention] = []
        street: str | None = None
        street_span = (0, 0)
        i = 0
        while i < len(words):
            word = words[i]
            if word in STREET_WORDS:
                # A street may start with a place's name ("Jl. Kampung Melayu Besar"): that name counts; the
                # words after it are the street's own name.
                name, end = self.street(i + 1)
                if street is None and name is not None:
                    street = name
                if name is not None:
                    street_span = (i + 1, end)
                i += 1
                continue
            marker = MARKERS.get(word)
            start = i + 1 if marker else i
            longest = self.span(start) if start < len(words) else 0
            mention = self._exact_mention(start, longest, marker, word)
            if mention is None and marker is not None:
                mention = self._fuzzy_mention(start, min(longest, 3), marker, word)
            if mention is None:
                i += 1
                continue
            if marker is None and start > 0 and words[start - 1] in RIVER_WORDS and not self.breaks[start]:
                i = start + mention.words  # a river's name, not a place
                continue
            if street_span[0] < start < street_span[1]:
                i = start + mention.words  # the rest of a street's name ("Jl. Soekarno Hatta"), not a place
                continue
            after = start + mention.words
            # A well-known area is itself an estate or landmark: "Taman Ratu Indah" is Taman Ratu.
            weak = None if self.areas and _known_area(mention.text) else self._weakness(start, after, marker)
            found.append(
                Mention(
                    mention.text, start, mention.words, marker, mention.candidates, mention.fuzzy, weak, mention.kind
                )
            )
            i = after
        return found, street

    def _weakness(self, start: int, after: int, marker: str | None) -> str | None:
        """Why the name at words[start:after] does not place a report on its own, or None."""
        words, breaks = self.words, self.breaks
        following = words[after] if after < len(words) and not breaks[after] else None
        if following in DEVELOPMENT_WORDS:
            return "development"
        if marker is not None:
            return None
        if start > 0 and not breaks[start] and words[start - 1] in LANDMARK_WORDS:
            return "landmark"
        return None

    def _exact_mention(self, start: int, longest: int, marker: str | None, word: str) -> Mention | None:
        for n in range(longest, 0, -1):
            phrase = self.words[start : start + n]
            if n == 1 and marker is None and (phrase[0] in STOPWORDS or len(phrase[0]) < 4):
                continue
            places = self.exact(start, n, marker)
            if places:
                return Mention(" ".join(phrase), start, n, marker, places, False, None, KIND_WORDS.get(word))
        return None

    def _fuzzy_mention(self, start: int, longest: int, marker: str, word: str) -> Mention | None:
        for n in range(longest, 0, -1):
            phrase = self.words[start : start + n]
            if n == 1 and len(phrase[0]) < 4:
                continue
            places = self.fuzzy(start, n, marker)
            if places:
                return Mention(" ".join(phrase), start, n, marker, places, True, None, KIND_WORDS.get(word))
        return None


def find_mentions(text: str, *, within: str | None = None) -> tuple[list[Mention], str | None]:
    """Every place name in `text` (longest match first, left to right) and the first street named."""
    words, breaks = _tokens(text)
    return _Scan(words, breaks, within, ()).mentions()


def _kecamatan_of(place: Place) -> str | None:
    if place.level == "kecamatan":
        return place.kode
    if place.level == "desa_kelurahan":
        return place.kode_induk
    return None


def _ancestors(code: str) -> tuple[str, ...]:
    """The kabupaten/kota and kecamatan codes above `code` (not itself)."""
    parts = code.split(".")
    return tuple(".".join(parts[:k]) for k in range(2, len(parts)))


def _label(place: Place) -> str:
    return f"{place.nama} ({place.kode})"


def _distinct(
    mentions: list[Mention], hints: tuple[str, ...], why: _Why
) -> tuple[list[Mention], list[tuple[Place, ...]], list[str]]:
    """Each name once (a strong mention over a weak one), each with at most MAX_CANDIDATES places: those inside
    the hints or an area another name gives first, then by code. Returns the names, their places and the caps hit."""
    unique: dict[tuple[str, str | None], Mention] = {}
    for m in mentions:
        key = (m.text, m.marker)
        if key not in unique or (unique[key].weak and not m.weak):
            unique[key] = m
    names = list(unique.values())
    capped: list[str] = []
    if len(names) > MAX_MENTIONS:
        capped.append("mentions")
        why.add(
            f"batas kerja: hanya {MAX_MENTIONS} dari {len(names)} nama tempat dinilai",
            f"work cap: only {MAX_MENTIONS} of {len(names)} place names scored",
        )
        names = names[:MAX_MENTIONS]
    areas = tuple(
        p.kode
        for m in names
        if len(m.candidates) <= MAX_CANDIDATES
        for p in m.candidates
        if p.level != "desa_kelurahan"
    )
    named = set(areas)
    kept: list[tuple[Place, ...]] = []
    for m in names:
        places = m.candidates
        if len(places) > MAX_CANDIDATES:
            # Set lookups of each place's parents: no pairwise comparison of places with named areas.
            first = [p for p in places if _inside_any(p, hints) or any(a in named for a in _ancestors(p.kode))]
            seen = {p.kode for p in first}
            places = tuple((first + [p for p in places if p.kode not in seen])[:MAX_CANDIDATES])
            why.add(
                f"{m.text}: {len(m.candidates)} tempat bernama sama, {MAX_CANDIDATES} dinilai",
                f"{m.text}: {len(m.candidates)} places share the name, {MAX_CANDIDATES} scored",
            )
        kept.append(places)
    return names, kept, capped


def _pick(top: list[Place], label: str, test: dict[str, bool], why_id: str, why_en: str, why: _Why) -> list[Place]:
    """Keep the tied places that pass a tie-break, when some but not all do; record why."""
    passing = [p for p in top if test.get(p.kode)]
    if passing and len(passing) < len(top):
        others = ", ".join(p.kode for p in top if not test.get(p.kode))
        why.add(f"{label}: {why_id} (bukan {others})", f"{label}: {why_en} (not {others})")
        return passing
    return top


def parse_location(
    text: str,
    *,
    within: str | None = None,
    registered: str | None = None,
    jurisdiction: str | None = None,
    areas: bool = True,
) -> ParsedLocation:
    """The place `text` most likely names, with its kecamatan, the RT/RW, the street and the reason (any may be
    None). `within` limits the search to one region; `registered` (the sender's registered area) and
    `jurisdiction` (the area of the channel or agency the report arrived through) only break ties. `areas`
    (default on) also reads the well-known Jakarta area names of known_areas (off: official names only).

    Ambiguous when the best candidates are equally good and lie in different kecamatan (kecamatan then None).
    Linear in the text; the work per report is capped (`capped`, with the cap named in the reason).
    """
    words, breaks = _tokens(text)
    hints = tuple(h for h in (registered, jurisdiction) if h)
    scan = _Scan(words, breaks, within, hints, areas)
    mentions, street = scan.mentions()
    low = " ".join(_ascii_words(text))
    rw_match = _RW.search(low)
    rt_match = _RT.search(low)
    pair = _RT_RW.search(low) if not rw_match else None
    rw = rw_match.group(1) if rw_match else (pair.group(2) if pair else None)
    rt = rt_match.group(1) if rt_match else (pair.group(1) if pair else None)
    why = _Why()
    if scan.capped:
        why.add(
            f"batas kerja: paling banyak {MAX_FUZZY} pencarian nama salah eja",
            f"work cap: at most {MAX_FUZZY} misspelt-name searches",
        )
    if not mentions:
        if street:
            why.add(
                f"hanya jalan {street!r} disebut, tanpa nama wilayah",
                f"only the street {street!r} is named, no administrative place",
            )
        else:
            why.add("tidak ada nama tempat dalam teks", "no place name in the text")
        return ParsedLocation(None, None, (), rw, rt, street, reason=why.text(), capped=bool(scan.capped))
    names, kept, capped = _distinct(mentions, hints, why)
    capped = scan.capped + capped
    # Which names have a place with this code, or a place inside this code: agreement without comparing pairs.
    by_code: dict[str, set[int]] = defaultdict(set)
    under: dict[str, set[int]] = defaultdict(set)
    siblings: dict[str, set[int]] = defaultdict(set)  # desa/kelurahan names by kecamatan
    work = 0
    scored_names = 0
    for k, places in enumerate(kept):
        if work + len(places) > MAX_WORK:
            capped.append("work")
            why.add(
                f"batas kerja: {MAX_WORK} penilaian kandidat, {len(kept) - k} nama tidak dinilai",
                f"work cap: {MAX_WORK} candidate evaluations, {len(kept) - k} names not scored",
            )
            break
        work += len(places)
        scored_names += 1
        for p in places:
            by_code[p.kode].add(k)
            for a in _ancestors(p.kode):
                under[a].add(k)
            if p.level == "desa_kelurahan" and p.kode_induk:
                siblings[p.kode_induk].add(k)
    scored: dict[str, float] = {}
    places_by_code: dict[str, Place] = {}
    support_of: dict[str, set[int]] = {}
    bare: dict[str, bool] = {}
    source_of: dict[str, str] = {}  # the name that gave a place its best score
    weak_only: dict[str, str | None] = {}  # why a place's only evidence is weak, when it is
    kind_ok: dict[str, bool] = {}
    for k in range(scored_names):
        m = names[k]
        for p in kept[k]:
            work += 1
            score = _LEVEL_WEIGHT[p.level] + 0.5 * m.words
            if m.marker == p.level:
                score += 2.0
            if m.fuzzy:
                score -= 1.0
            # A landmark named after a kecamatan or kota is inside it; one named after a kelurahan often is not.
            weak = None if m.weak == "landmark" and p.level != "desa_kelurahan" else m.weak
            if weak:
                score -= 1.5
            # Agreement: another name means a place that contains, or lies inside, this one.
            related = under.get(p.kode, set()) | by_code.get(p.kode, set())  # another name for it, too
            for a in _ancestors(p.kode):
                related |= by_code.get(a, set())
            related.discard(k)
            score += 3.0 * len(related)
            # Weaker agreement: another name means a desa/kelurahan in the same kecamatan.
            if p.level == "desa_kelurahan" and p.kode_induk:
                score += 1.0 * len(siblings.get(p.kode_induk, set()) - related - {k})
            # A name that means many places says little on its own.
            score -= 0.2 * min(len(m.candidates) - 1, 10)
            if p.kode not in scored or score > scored[p.kode]:
                scored[p.kode] = score
                support_of[p.kode] = related
                weak_only[p.kode] = None if related else weak
                source_of[p.kode] = m.text
                # One unmarked word naming a desa/kelurahan, nothing else agreeing: many such names are also
                # everyday words ("Lurah", "Bisa", "Tampak" are desa names).
                bare[p.kode] = p.level == "desa_kelurahan" and m.marker is None and m.words == 1 and not related
            places_by_code[p.kode] = p
            if m.kind is not None and p.level == "desa_kelurahan":
                kind_ok[p.kode] = kind_ok.get(p.kode, False) or p.kode.rsplit(".", 1)[1].startswith(m.kind)
    best = max(scored.values())
    top = sorted((places_by_code[c] for c, s in scored.items() if s >= best - 1e-9), key=lambda p: p.kode)
    if hints and not any(_inside_any(p, hints) for p in top):
        # "Kembangan": a desa far away outscores the kecamatan of that name inside the sender's or the channel's
        # area only by its level's weight; the same name inside the area is the better reading.
        said = {source_of[p.kode] for p in top}
        near = sorted(
            (
                places_by_code[c]
                for c, s in scored.items()
                if s >= best - LEVEL_SLACK - 1e-9 and source_of[c] in said and _inside_any(places_by_code[c], hints)
            ),
            key=lambda p: p.kode,
        )
        if near:
            why.add(
                f"{top[0].nama}: yang di dalam wilayah pengirim/kanal ({', '.join(hints)}) dipilih, bukan "
                f"{', '.join(p.kode for p in top[:4])}",
                f"{top[0].nama}: the one inside the sender's or channel's area ({', '.join(hints)}) chosen over "
                f"{', '.join(p.kode for p in top[:4])}",
            )
            top = near
    if len(top) > 1:
        label = top[0].nama
        why.add(
            f"{label}: {len(top)} tempat sama kuat ({', '.join(p.kode for p in top[:4])})",
            f"{label}: {len(top)} places score alike ({', '.join(p.kode for p in top[:4])})",
        )
        # The sender's registered area, then the channel's, each from the narrowest level that separates the
        # tied places (a sender registered in one kelurahan is still nearest to places in its kecamatan).
        for area, name_id, name_en in (
            (registered, "wilayah terdaftar pengirim", "the sender's registered area"),
            (jurisdiction, "wilayah kanal laporan", "the jurisdiction the report arrived through"),
        ):
            for level in dict.fromkeys((area, *reversed(_ancestors(area)), area[:2])) if area else ():
                if len(top) < 2:
                    break
                test = {p.kode: gazetteer.contains(level, p.kode) for p in top}
                if any(test.values()):
                    top = _pick(top, label, test, f"di {name_id} ({level})", f"inside {name_en} ({level})", why)
                    break
        if len(top) > 1:
            top = _pick(
                top,
                label,
                kind_ok,
                "jenisnya sesuai kata kelurahan/desa di teks",
                "its kind matches the word kelurahan/desa in the text",
                why,
            )
    kecamatans = {_kecamatan_of(p) for p in top}
    result_capped = bool(capped)
    if all(weak_only.get(p.kode) for p in top):
        weak_id, weak_en = _WEAK_REASONS[weak_only[top[0].kode] or "development"]
        why.add(
            f"{top[0].nama} {weak_id}: tidak cukup untuk menentukan lokasi",
            f"{top[0].nama} {weak_en}: not enough to place the report",
        )
        return ParsedLocation(None, None, tuple(mentions), rw, rt, street, False, why.text(), result_capped, work)
    if jurisdiction and all(bare.get(p.kode) and not _inside_any(p, hints) for p in top):
        why.add(
            f"{top[0].nama} ({top[0].kode}) di luar wilayah kanal laporan ({jurisdiction}) dan hanya disebut dengan "
            "satu kata tanpa penanda: tidak cukup untuk menentukan lokasi",
            f"{top[0].nama} ({top[0].kode}) lies outside the jurisdiction the report arrived through ({jurisdiction}) "
            "and is named by one unmarked word only: not enough to place the report",
        )
        return ParsedLocation(None, None, tuple(mentions), rw, rt, street, False, why.text(), result_capped, work)
    if len(top) == 1:
        place = top[0]
        # "Kp. Melayu, Kec. Jatinegara": the kecamatan scores best, the kelurahan inside it is more precise.
        inside = [
            p
            for c, p in places_by_code.items()
            if support_of.get(c) and c != place.kode and gazetteer.contains(place.kode, c)
        ]
        if len(inside) == 1:
            why.add(
                f"{_label(inside[0])} di dalam {place.nama} juga disebut",
                f"{_label(inside[0])} inside {place.nama} is also named",
            )
            place = inside[0]
        _explain(place, names, kept, support_of.get(place.kode, set()), why)
        return ParsedLocation(
            place, _kecamatan_of(place), tuple(mentions), rw, rt, street, False, why.text(), result_capped, work
        )
    if len(kecamatans) == 1 and None not in kecamatans:
        place = top[0]
        why.add(
            f"semua di kecamatan {kecamatans.copy().pop()}; dipilih {_label(place)}",
            f"all in kecamatan {kecamatans.copy().pop()}; chose {_label(place)}",
        )
        return ParsedLocation(
            place, kecamatans.pop(), tuple(mentions), rw, rt, street, True, why.text(), result_capped, work
        )
    why.add("tidak dapat memilih: beda kecamatan", "cannot choose: different kecamatan")
    return ParsedLocation(None, None, tuple(mentions), rw, rt, street, True, why.text(), result_capped, work)


def _known_area(text: str) -> Place | None:
    """The place a well-known area name (spaces ignored) lies in, or None."""
    return _known_area_glued().get(text.replace(" ", ""))


@lru_cache(maxsize=1)
def _known_area_glued() -> dict[str, Place]:
    return {name.replace(" ", ""): place for name, place in known_areas().items()}


def _explain(place: Place, names: list[Mention], kept: list[tuple[Place, ...]], support: set[int], why: _Why) -> None:
    level_id, level_en = _LEVEL_NAME[place.level]
    source = next((m for m, ps in zip(names, kept, strict=False) if any(p.kode == place.kode for p in ps)), None)
    said = f"'{source.text}'" if source else place.nama
    id_parts = [f"{said} → {level_id} {_label(place)}"]
    en_parts = [f"{said} → {level_en} {_label(place)}"]
    if source is not None and source.marker:
        id_parts.append("didahului kata penanda tingkat")
        en_parts.append("after a level word")
    if source is not None and source.fuzzy:
        id_parts.append("ejaan mirip")
        en_parts.append("close spelling")
    if source is not None and _known_area(source.text) == place:
        id_parts.append("nama kawasan yang dikenal, bukan nama resmi")
        en_parts.append("a well-known area name, not an official one")
    if support:
        agreeing = ", ".join(sorted(names[k].text for k in support))
        id_parts.append(f"sesuai dengan {agreeing}")
        en_parts.append(f"agrees with {agreeing}")
    if source is not None and len(source.candidates) > 1:
        id_parts.append(f"1 dari {len(source.candidates)} tempat bernama sama")
        en_parts.append(f"1 of {len(source.candidates)} places of that name")
    why.id.insert(0, ", ".join(id_parts))
    why.en.insert(0, ", ".join(en_parts))


def naive_kecamatan(text: str, *, within: str | None = None) -> str | None:
    """Baseline: the first kecamatan whose exact official name appears in the text, else None."""
    low = f" {' '.join(_ascii_words(text))} "
    names, places = _names_at("kecamatan", within)
    for name, place in zip(names, places, strict=True):
        if f" {name} " in low:
            return place.kode
    return None

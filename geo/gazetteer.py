"""The Kemendagri gazetteer: every official code with its name, level and parent."""

from __future__ import annotations

import csv
import gzip
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).parent / "data"
CODE_RE = re.compile(r"^\d{2}(\.\d{2}(\.\d{2}(\.\d{4})?)?)?$")
LEVELS = {1: "provinsi", 2: "kabupaten_kota", 3: "kecamatan", 4: "desa_kelurahan"}


@dataclass(frozen=True, slots=True)
class Place:
    kode: str
    nama: str
    level: str
    kode_induk: str | None


@lru_cache(maxsize=1)
def _places() -> dict[str, Place]:
    with gzip.open(DATA / "wilayah_kemendagri.csv.gz", "rt", encoding="utf-8", newline="") as fh:
        return {
            row["kode"]: Place(row["kode"], row["nama"].strip(), row["level"], row["kode_induk"] or None)
            for row in csv.DictReader(fh)
        }


def is_well_formed(code: str) -> bool:
    """True when `code` has the shape PP, PP.KK, PP.KK.CC or PP.KK.CC.DDDD."""
    return bool(CODE_RE.match(code))


def find_place(code: str) -> Place | None:
    """The gazetteer entry for `code`, or None when there is no such code."""
    return _places().get(code)


def level_of(code: str) -> str:
    """The administrative level a well-formed code names."""
    return LEVELS[code.count(".") + 1]


def contains(outer: str, inner: str) -> bool:
    """True when area `inner` lies inside (or is) area `outer`, by the code hierarchy."""
    return inner == outer or inner.startswith(outer + ".")


@lru_cache(maxsize=4)
def places_at(level: str) -> tuple[Place, ...]:
    """Every place at one level (provinsi, kabupaten_kota, kecamatan, desa_kelurahan), by code."""
    return tuple(sorted((p for p in _places().values() if p.level == level), key=lambda p: p.kode))


def children(code: str) -> list[Place]:
    """The places one level below `code`."""
    return [p for p in _places().values() if p.kode_induk == code]

"""Estimated population reached by an area, from population per kabupaten/kota apportioned by area share."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import shapely
from shapely.geometry.base import BaseGeometry

from geo import boundaries
from geo.crs import equal_area
from geo.gazetteer import find_place

POPULATION_FILE = Path(__file__).parent / "data" / "penduduk_prov_kab.csv"


@dataclass(frozen=True, slots=True)
class KabupatenReach:
    """One kabupaten/kota's share of the area: the fraction of its land covered, and the people implied."""

    kode: str
    nama: str
    population: int
    fraction: float
    estimated: int


@dataclass(frozen=True, slots=True)
class Reach:
    """Total estimated people in the area and the per-kabupaten breakdown (largest first)."""

    total: int
    parts: tuple[KabupatenReach, ...]


@lru_cache(maxsize=1)
def population_by_kode() -> dict[str, int]:
    """Total population per kode (provinsi and kabupaten/kota; "0" is Indonesia)."""
    with POPULATION_FILE.open(encoding="utf-8", newline="") as fh:
        return {row["kode"]: int(row["total"]) for row in csv.DictReader(fh)}


def estimate_reach(area: BaseGeometry) -> Reach:
    """People in `area`, assuming each kabupaten's population is spread evenly over its land (equal-area)."""
    pop = population_by_kode()
    ea = equal_area()
    area_ea = ea.forward(area)
    shapely.prepare(area_ea)
    lvl = boundaries.load_level("kabupaten_kota")
    parts = []
    for i in sorted(lvl.tree.query(area, predicate="intersects")):
        kode = str(lvl.codes[i])
        kab_ea = ea.forward(lvl.geoms[i])
        frac = min(1.0, kab_ea.intersection(area_ea).area / kab_ea.area) if kab_ea.area else 0.0
        if frac <= 0:
            continue
        people = pop.get(kode, 0)
        place = find_place(kode)
        parts.append(KabupatenReach(kode, place.nama if place else kode, people, frac, round(people * frac)))
    parts.sort(key=lambda p: -p.estimated)
    return Reach(sum(p.estimated for p in parts), tuple(parts))

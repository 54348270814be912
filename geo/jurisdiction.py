"""Operators target only inside their jurisdiction (their kabupaten/kota or provinsi boundary)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import shapely
from shapely.geometry.base import BaseGeometry

from geo import boundaries
from geo.areas import BBOX
from geo.crs import area_km2, metric_for
from geo.errors import GeoError
from geo.gazetteer import contains, find_place

DEFAULT_TOLERANCE_M = 300.0  # upstream boundaries are simplified; a drawn edge on the border may stray this far
MIN_OUTSIDE_KM2 = 1e-4  # 100 m²: below this an "outside" part is float noise of the buffer


class OutsideJurisdiction(GeoError):
    """The area leaves the operator's jurisdiction; carries the outside area and the kabupaten it touches."""

    def __init__(self, jurisdiction: str, outside_km2: float, touched: tuple[str, ...], at_sea: bool) -> None:
        self.jurisdiction = jurisdiction
        self.outside_km2 = outside_km2
        self.touched_codes = touched
        names = ", ".join(f"{c} {(p.nama if (p := find_place(c)) else '')}".strip() for c in touched)
        size = f"{outside_km2:.2f} km²" if outside_km2 >= 0.01 else f"{outside_km2 * 1e6:.0f} m²"
        where_id = f"menyentuh {names}" if touched else "di laut / di luar wilayah daratan"
        where_en = f"touching {names}" if touched else "at sea / outside any land boundary"
        super().__init__(
            "outside-jurisdiction",
            f"Area keluar dari wilayah kewenangan {jurisdiction}: {size} di luar, {where_id}",
            f"area leaves jurisdiction {jurisdiction}: {size} outside, {where_en}",
        )
        self.at_sea = at_sea


@dataclass(frozen=True, slots=True)
class JurisdictionCheck:
    """An accepted area: how much of it lies at sea outside the jurisdiction (allowed only with allow_sea)."""

    jurisdiction: str | None
    sea_outside_km2: float


@lru_cache(maxsize=64)
def _grown_jurisdiction(code: str, tolerance_m: float) -> BaseGeometry:
    home = boundaries.geometry_of(code)
    # Each level was simplified upstream on its own, so a kecamatan can poke out of its kabupaten outline:
    # the jurisdiction is the union of its own boundary and those of every unit inside it.
    lower = [g for level in boundaries.LEVELS[code.count(".") + 1 :] for _, g in boundaries.descendants(code, level)]
    if lower:
        home = shapely.union_all([home, *lower])
    proj = metric_for(home)
    # Buffer in metres, then back to degrees: the tolerance is the same on every side of the boundary.
    grown = proj.inverse(proj.forward(home).buffer(tolerance_m, quad_segs=4))
    shapely.prepare(grown)
    return grown


def home_geometry(code: str, tolerance_m: float = DEFAULT_TOLERANCE_M) -> BaseGeometry:
    """The jurisdiction's boundary (with every unit inside it) grown by tolerance_m, prepared for fast tests."""
    return _grown_jurisdiction(code, float(tolerance_m))


def check_within(
    jurisdiction_code: str | None,
    area_geometry: BaseGeometry,
    tolerance_m: float = DEFAULT_TOLERANCE_M,
    allow_sea: bool = False,
) -> JurisdictionCheck:
    """Accept `area_geometry` if it lies within the jurisdiction grown by tolerance_m; None = all Indonesia.

    With allow_sea, parts outside the jurisdiction that touch no kabupaten/kota land (open sea, e.g. a tsunami
    zone off the coast) are accepted and reported. Raises: OutsideJurisdiction (code "outside-jurisdiction"),
    GeoError for an unknown jurisdiction code.
    """
    if jurisdiction_code is None:
        minx, miny, maxx, maxy = area_geometry.bounds
        if minx < BBOX[0] or miny < BBOX[1] or maxx > BBOX[2] or maxy > BBOX[3]:
            outside = area_geometry.difference(shapely.box(*BBOX))
            raise OutsideJurisdiction("Indonesia", area_km2(outside), (), True)
        return JurisdictionCheck(None, 0.0)
    grown = _grown_jurisdiction(jurisdiction_code, float(tolerance_m))
    outside = area_geometry.difference(grown)
    km2 = area_km2(outside) if not outside.is_empty else 0.0
    if km2 <= MIN_OUTSIDE_KM2:
        return JurisdictionCheck(jurisdiction_code, 0.0)
    touched = tuple(
        c for c in boundaries.intersecting_codes(outside, "kabupaten_kota") if not contains(jurisdiction_code, c)
    )
    if not touched and allow_sea:
        return JurisdictionCheck(jurisdiction_code, km2)
    raise OutsideJurisdiction(jurisdiction_code, km2, touched, at_sea=not touched)


MAX_PART_OUTSIDE_FRACTION = 0.5  # a drawn part more than half outside the jurisdiction's own land is not an edge


def _parts(geometry: BaseGeometry) -> list[BaseGeometry]:
    if hasattr(geometry, "geoms"):
        return [p for g in geometry.geoms for p in _parts(g)]
    return [geometry] if not geometry.is_empty else []


def refused_parts(jurisdiction_code: str | None, area_geometry: BaseGeometry) -> list[tuple[int, OutsideJurisdiction]]:
    """The drawn parts (1-based, in order) that lie mostly outside the jurisdiction's own boundary (no tolerance)
    on another kabupaten/kota's land, however small: a 4 m square inside another kabupaten is refused even though
    the whole area passes `check_within`'s tolerance. Parts at sea are not refused here. None = all Indonesia."""
    if jurisdiction_code is None:
        return []
    home = _grown_jurisdiction(jurisdiction_code, 0.0)
    refused = []
    for n, part in enumerate(_parts(area_geometry), start=1):
        if part.area == 0 or home.contains(part):
            continue
        outside = part.difference(home)
        if outside.is_empty or outside.area <= part.area * MAX_PART_OUTSIDE_FRACTION:
            continue
        touched = tuple(
            c for c in boundaries.intersecting_codes(outside, "kabupaten_kota") if not contains(jurisdiction_code, c)
        )
        if touched:
            refused.append((n, OutsideJurisdiction(jurisdiction_code, area_km2(outside), touched, at_sea=False)))
    return refused

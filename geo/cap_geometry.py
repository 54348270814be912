"""CAP output geometry: a few simple polygons (≤ 100 vertices each) that always cover the whole target.

Receivers (cell broadcast, sirens, apps) choke on huge polygons, so the target is grown by a small buffer and
simplified; a receiver may alert a little too wide, never too narrow. CAP polygons have no holes, so holes in
the target (an enclave kota inside a kabupaten) are filled and reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from geo.crs import area_km2, metric_for

MAX_VERTICES = 100  # coordinate pairs per CAP polygon, the closing pair included
TARGET_OVERSHOOT_M = 161.0  # about a tenth of a mile: what cell-broadcast geo-fencing can resolve anyway
# Buffers tried in turn (metres); the first one whose simplification covers the target wins.
BUFFER_STEPS_M = tuple(sorted({161, *(round(5 * 1.3**k) for k in range(36))}))  # 5 m .. 49 km
COORD_DECIMALS = 5  # ~1 m; what BMKG and most CAP producers send


@dataclass(frozen=True, slots=True)
class CapGeometry:
    """Simplified covering polygons (EPSG:4326), their worst overshoot and whether the 161 m aim was met."""

    polygons: tuple[Polygon, ...]
    overshoot_m: float
    buffer_m: float
    target_met: bool
    holes_filled_km2: float
    note: str

    def cap_strings(self) -> list[str]:
        """Each polygon as a CAP <polygon> value: "lat,lon lat,lon ...", first pair equal to the last."""
        return [polygon_to_cap(p) for p in self.polygons]

    def geojson(self) -> dict[str, Any]:
        """The polygons as a GeoJSON MultiPolygon geometry (lon,lat)."""
        return shapely.geometry.mapping(shapely.MultiPolygon(list(self.polygons)))


def polygon_to_cap(poly: Polygon) -> str:
    """A hole-free polygon as a CAP <polygon> string (lat,lon pairs, closed)."""
    coords = list(poly.exterior.coords)
    if coords[0] != coords[-1]:
        coords.append(coords[0])
    return " ".join(f"{lat:.{COORD_DECIMALS}f},{lon:.{COORD_DECIMALS}f}" for lon, lat in coords)


def _fill(poly: Polygon) -> Polygon:
    return Polygon(poly.exterior)


def _simplify_to(poly: Polygon, max_vertices: int, max_tol: float) -> Polygon | None:
    """The least-simplified version of `poly` with ≤ max_vertices coordinates, or None past max_tol."""
    if len(poly.exterior.coords) <= max_vertices:
        return poly
    lo, hi = 0.0, max_tol
    best = shapely.simplify(poly, hi, preserve_topology=True)
    if best.is_empty or len(best.exterior.coords) > max_vertices:
        return None
    for _ in range(20):  # bisection to about a millionth of max_tol
        mid = (lo + hi) / 2
        cand = shapely.simplify(poly, mid, preserve_topology=True)
        if not cand.is_empty and len(cand.exterior.coords) <= max_vertices:
            best, hi = cand, mid
        else:
            lo = mid
    return best


def _rounded(poly: Polygon) -> Polygon:
    # What is checked must be exactly what is sent, so containment is tested after rounding.
    return Polygon(np.round(np.asarray(poly.exterior.coords), COORD_DECIMALS))


def _overshoot_m(polys: list[Polygon], filled_target_m: BaseGeometry, to_m: Any) -> float:
    """Largest distance from any CAP polygon's outline to the hole-filled target, sampled every 10 m."""
    worst = 0.0
    for p in polys:
        ring = shapely.segmentize(to_m(p).exterior, 10.0)
        pts = shapely.points(np.asarray(ring.coords))
        worst = max(worst, float(shapely.distance(filled_target_m, pts).max()))
    return worst


def cap_polygons(
    target: BaseGeometry, max_vertices: int = MAX_VERTICES, target_overshoot_m: float = TARGET_OVERSHOOT_M
) -> CapGeometry:
    """Polygons of ≤ max_vertices coordinates that together contain `target`, smallest buffer first.

    Raises: ValueError if no buffer up to 49 km gives a covering that small (not seen on real areas).
    """
    if max_vertices < 5:
        raise ValueError("max_vertices must be at least 5")
    proj = metric_for(target)
    target_m = proj.forward(target)
    filled_m = shapely.union_all([_fill(p) for p in shapely.get_parts(target_m)])
    holes_km2 = area_km2(proj.inverse(filled_m)) - area_km2(target)
    shapely.prepare(target)
    for buffer_m in BUFFER_STEPS_M:
        grown = filled_m.buffer(buffer_m, quad_segs=4)
        out: list[Polygon] = []
        for part in shapely.get_parts(grown):
            simple = _simplify_to(_fill(part), max_vertices, max_tol=2.0 * buffer_m)
            if simple is None:
                break
            back = proj.inverse(simple)
            assert isinstance(back, Polygon)  # a transform keeps the geometry type
            out.append(_rounded(back))
        else:
            cover = shapely.union_all(out)
            if cover.is_valid and all(p.is_valid for p in out) and cover.covers(target):
                overshoot = _overshoot_m(out, filled_m, proj.forward)
                met = overshoot <= target_overshoot_m
                note = (
                    f"{len(out)} poligon, melebihi target paling jauh {overshoot:.0f} m / "
                    f"{len(out)} polygon(s), worst overshoot {overshoot:.0f} m"
                )
                if not met:
                    note += (
                        f"; batas {max_vertices} titik tidak memungkinkan ≤ {target_overshoot_m:.0f} m / "
                        f"the {max_vertices}-vertex limit does not allow ≤ {target_overshoot_m:.0f} m"
                    )
                if holes_km2 > 0.01:
                    note += f"; lubang {holes_km2:.1f} km² ikut tercakup / holes of {holes_km2:.1f} km² filled"
                return CapGeometry(tuple(out), overshoot, float(buffer_m), met, max(holes_km2, 0.0), note)
    raise ValueError("no covering CAP polygon found within a 49 km buffer")

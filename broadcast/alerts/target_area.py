"""What an alert targets, as geometry: resolve the operator's areas with geo, build the CAP output geometry, read
stored areas back (codes, drawn parts, imported CAP polygons and circles) for targeting, maps and authority checks.

A stored area keeps its Kemendagri codes (`geocodes`), the resolved geometry of everything drawn
(`target_geometry`: GeoJSON, circles, CAP strings), and the CAP output: circles stay circles, the other drawn
parts become at most 100-vertex covering polygons ([[lat, lon], ...] rings) with their overshoot in metres.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import shapely
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from broadcast.alerts.models import Alert, AlertArea
from broadcast.alerts.schemas import AreaSpec
from broadcast.errors import InvalidGeometry
from geo import areas as geo_areas
from geo import boundaries
from geo.cap_geometry import TARGET_OVERSHOOT_M, CapGeometry, cap_polygons
from geo.errors import GeoError


@dataclass(frozen=True, slots=True)
class ResolvedArea:
    """An operator's area, validated: its codes, the union of the drawn parts, and the CAP output geometry."""

    codes: tuple[str, ...]
    drawn: BaseGeometry | None
    circles: tuple[dict[str, float], ...]
    cap: CapGeometry | None  # covering polygons of the drawn parts that are not circles
    warnings: tuple[str, ...]

    def to_row(self, area_desc: str) -> AlertArea:
        """The AlertArea row storing this area."""
        return AlertArea(
            area_desc=area_desc,
            geocodes=list(self.codes),
            target_geometry=None if self.drawn is None else shapely.geometry.mapping(self.drawn),
            polygons=[] if self.cap is None else [cap_ring(p) for p in self.cap.polygons],
            circles=[dict(c) for c in self.circles],
            cap_overshoot_m=None if self.cap is None else round(self.cap.overshoot_m, 1),
        )

    @property
    def geometry(self) -> BaseGeometry | None:
        """The whole target: boundaries of the codes united with the drawn parts."""
        return union([codes_geometry(self.codes), self.drawn])


@dataclass(frozen=True, slots=True)
class AreaTarget:
    """What an alert targets: Kemendagri codes (exact, by the code hierarchy) and drawn geometry."""

    codes: tuple[str, ...]
    drawn: BaseGeometry | None

    @property
    def geometry(self) -> BaseGeometry | None:
        """Boundaries of the codes united with the drawn geometry; None when there is nothing to target."""
        return union([codes_geometry(self.codes), self.drawn])


def cap_ring(poly: Polygon) -> list[list[float]]:
    """A covering polygon as a closed CAP ring of [lat, lon] pairs."""
    return [[lat, lon] for lon, lat in poly.exterior.coords]


def _circle_of_cap(text: str) -> dict[str, float]:
    centre, radius = text.split()
    lat, lon = (float(v) for v in centre.split(","))
    return {"lat": lat, "lon": lon, "radius_km": float(radius)}


def resolve_area(spec: AreaSpec) -> ResolvedArea:
    """Validate and resolve one area with geo (repairing what geo repairs) and compute its CAP geometry.

    Raises: InvalidGeometry carrying geo's code (self-intersection, outside-indonesia, too-many-vertices, ...).
    """
    polygonal: list[geo_areas.Area] = []
    round_parts: list[geo_areas.Area] = []
    circles: list[dict[str, float]] = []
    warnings: list[str] = []
    try:
        if spec.geometry is not None:
            polygonal.append(geo_areas.area_from_geojson(spec.geometry))
        if spec.cap_polygon:
            polygonal.append(geo_areas.area_from_cap_polygon(spec.cap_polygon))
        if spec.circle is not None:
            c = spec.circle
            round_parts.append(geo_areas.area_from_circle(c.lon, c.lat, c.radius_km))
            circles.append({"lat": c.lat, "lon": c.lon, "radius_km": c.radius_km})
        if spec.cap_circle:
            round_parts.append(geo_areas.area_from_cap_circle(spec.cap_circle))
            circles.append(_circle_of_cap(spec.cap_circle))
        drawn = geo_areas.union_areas(polygonal + round_parts) if polygonal or round_parts else None
        cap = None
        if polygonal:
            covered = geo_areas.union_areas(polygonal).geometry
            try:
                cap = cap_polygons(covered)
            except ValueError as exc:
                raise GeoError(
                    "no-cap-covering",
                    "Tidak ada poligon CAP ≤ 100 titik yang menutupi area ini",
                    f"no CAP polygon of at most 100 vertices covers this area ({exc})",
                ) from None
            if not cap.target_met:
                warnings.append(cap.note)
    except GeoError as exc:
        raise InvalidGeometry.from_geo(exc) from None
    for code in spec.geocodes:
        found = boundaries.nearest_geometry(code)
        if found is not None and found[0] != code:
            warnings.append(
                f"Batas {code} tidak tersedia; titik pelanggan dicocokkan dengan {found[0]} / no boundary for "
                f"{code}; subscriber points are matched against {found[0]}"
            )
    if drawn is not None:
        warnings += drawn.warnings
    return ResolvedArea(
        codes=tuple(spec.geocodes),
        drawn=None if drawn is None else drawn.geometry,
        circles=tuple(circles),
        cap=cap,
        warnings=tuple(warnings),
    )


def resolve_areas(specs: Sequence[AreaSpec]) -> list[ResolvedArea]:
    """Each area resolved in order.

    Raises: InvalidGeometry (the first refused area).
    """
    return [resolve_area(s) for s in specs]


def union(geoms: Iterable[BaseGeometry | None]) -> BaseGeometry | None:
    """The union of the non-empty geometries, or None."""
    parts = [g for g in geoms if g is not None and not g.is_empty]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else shapely.union_all(parts)


def codes_geometry(codes: Iterable[str]) -> BaseGeometry | None:
    """The union of the codes' boundaries (a desa without one counts as its nearest ancestor), or None."""
    found = [boundaries.nearest_geometry(c) for c in codes]
    return union(f[1] for f in found if f is not None)


def drawn_geometry(area: AlertArea) -> BaseGeometry | None:
    """The stored drawn geometry of an area, or None."""
    if not area.target_geometry:
        return None
    return shapely.geometry.shape(area.target_geometry)


def target_of(alert: Alert) -> AreaTarget:
    """Everything the alert's areas target."""
    codes = tuple(sorted({c for a in alert.areas for c in a.geocodes}))
    return AreaTarget(codes=codes, drawn=union(drawn_geometry(a) for a in alert.areas))


def target_of_areas(resolved: Sequence[ResolvedArea]) -> AreaTarget:
    """Everything a set of resolved (not yet stored) areas targets."""
    codes = tuple(sorted({c for r in resolved for c in r.codes}))
    return AreaTarget(codes=codes, drawn=union(r.drawn for r in resolved))


def cap_geometry_of(alert: Alert) -> CapGeometry | None:
    """The CAP polygons of the alert's drawn areas (as stored), with the worst overshoot; None without any."""
    polys = [Polygon([(lon, lat) for lat, lon in ring]) for a in alert.areas for ring in a.polygons if len(ring) >= 4]
    if not polys:
        return None
    overshoots = [a.cap_overshoot_m for a in alert.areas if a.cap_overshoot_m is not None]
    worst = max(overshoots, default=0.0)
    return CapGeometry(tuple(polys), worst, 0.0, worst <= TARGET_OVERSHOOT_M, 0.0, "")


def lenient_geometry(polygons: Sequence[Sequence[Sequence[float]]], circles: Sequence[dict[str, float]]) -> Any:
    """GeoJSON of the usable parts of imported CAP polygons/circles ([lat, lon] rings), or None.

    Parts geo refuses (outside Indonesia, broken rings) are left out: such an area is stored as it came and
    simply reaches no subscriber.
    """
    parts: list[BaseGeometry] = []
    for ring in polygons:
        try:
            parts.append(geo_areas.area_from_cap_polygon(" ".join(f"{p[0]},{p[1]}" for p in ring)).geometry)
        except (GeoError, IndexError):
            continue
    for c in circles:
        try:
            parts.append(geo_areas.area_from_circle(c["lon"], c["lat"], c["radius_km"]).geometry)
        except (GeoError, KeyError):
            continue
    geom = union(parts)
    return None if geom is None else shapely.geometry.mapping(geom)


def area_geometry(area: AlertArea) -> BaseGeometry | None:
    """What the area targets: its codes' boundaries plus the drawn target; for imported areas that have
    no resolved target, their CAP polygons and circles (None when nothing is left)."""
    drawn = drawn_geometry(area)
    parts = [codes_geometry(area.geocodes), drawn]
    if drawn is None:
        for ring in area.polygons:
            if len(ring) >= 4:
                parts.append(shapely.make_valid(shapely.Polygon([(lon, lat) for lat, lon in ring])))
        for circle in area.circles:
            try:
                parts.append(geo_areas.area_from_circle(circle["lon"], circle["lat"], circle["radius_km"]).geometry)
            except (GeoError, KeyError):
                continue
    return union(parts)


def alert_geometry(alert: Alert) -> BaseGeometry | None:
    """Every area of the alert united."""
    parts = [g for g in (area_geometry(a) for a in alert.areas) if g is not None]
    return shapely.union_all(parts) if parts else None


def map_png(alert: Alert) -> bytes | None:
    """A PNG map of the alert's area with kabupaten outlines, or None when it has no geometry."""
    from geo.mapimage import render_png

    geometry = alert_geometry(alert)
    if geometry is None:
        return None
    title = alert.infos[0].headline if alert.infos else ""
    return render_png(geometry, title=title)

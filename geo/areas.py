"""Turn an operator's area specification into one valid (Multi)Polygon in EPSG:4326, or refuse with a reason.

Accepted specifications (also as a dict for `build_area`):
- Kemendagri codes at any level: ``{"codes": ["33.15", "34.04.16"]}``
- GeoJSON Polygon / MultiPolygon / Feature / FeatureCollection in lon,lat: ``{"geojson": {...}}``
- a circle in kilometres: ``{"circle": {"lon": 110.446, "lat": -7.54, "radius_km": 25}}``
- CAP strings: ``{"cap_polygon": "lat,lon lat,lon ..."}``, ``{"cap_circle": "lat,lon radius_km"}``
- a CAP geocode: ``{"geocode": {"valueName": "KEMENDAGRI", "value": "72.71"}}``
- a union of any of these: ``{"union": [spec, spec, ...]}``
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from geo import boundaries
from geo.crs import local_metric
from geo.errors import GeoError

# Indonesia with a margin for its outer islands and territorial sea.
BBOX = (94.0, -11.5, 142.0, 6.5)
MAX_VERTICES = 10_000
MAX_NESTING = 6  # union / FeatureCollection / GeometryCollection levels an operator could sensibly need
MAX_PARTS = 1_000
MAX_RADIUS_KM = 1_000.0
CIRCLE_QUAD_SEGS = 32  # 128 vertices: area within 0.05 % of a true circle


@dataclass(frozen=True, slots=True)
class Area:
    """A validated target area: geometry in EPSG:4326, what was repaired or noticed, and its source codes."""

    geometry: BaseGeometry
    warnings: tuple[str, ...] = field(default=())
    codes: tuple[str, ...] = field(default=())


def _err(code: str, id_msg: str, en_msg: str) -> GeoError:
    return GeoError(code, id_msg, en_msg)


def _in_bbox(lon: float, lat: float) -> bool:
    return BBOX[0] <= lon <= BBOX[2] and BBOX[1] <= lat <= BBOX[3]


def _check_positions(points: Sequence[tuple[float, float]]) -> None:
    outside = [p for p in points if not _in_bbox(*p)]
    if not outside:
        return
    if all(_in_bbox(lat, lon) for lon, lat in outside):
        raise _err(
            "swapped-coordinates",
            "Koordinat tertukar: bujur dan lintang terbalik (GeoJSON memakai lon,lat; CAP memakai lat,lon)",
            "longitude and latitude are swapped (GeoJSON is lon,lat; CAP is lat,lon)",
        )
    lon, lat = outside[0]
    raise _err(
        "outside-indonesia",
        f"Titik ({lon}, {lat}) berada di luar wilayah Indonesia",
        f"point ({lon}, {lat}) lies outside Indonesia (94..142 E, 11.5 S..6.5 N)",
    )


def _number(value: Any) -> float:
    # bool is an int in Python; a JSON true in a coordinate is a client bug, not 1.0.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _err("bad-coordinates", f"Koordinat bukan angka: {value!r}", f"coordinate is not a number: {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise _err("bad-coordinates", f"Koordinat tidak hingga: {value!r}", f"coordinate is not finite: {value!r}")
    return out


def _position(pos: Any) -> tuple[float, float]:
    if not isinstance(pos, list | tuple) or not 2 <= len(pos) <= 3:
        if isinstance(pos, list | tuple) and pos and isinstance(pos[0], list | tuple):
            raise _err("too-deep", "Susunan koordinat terlalu dalam", "coordinates are nested too deeply")
        raise _err("bad-coordinates", f"Posisi tidak sah: {pos!r:.60}", f"invalid position: {pos!r:.60}")
    return _number(pos[0]), _number(pos[1])


def _ring(raw: Any) -> list[tuple[float, float]]:
    if not isinstance(raw, list | tuple):
        raise _err(
            "bad-coordinates",
            "Cincin poligon harus berupa daftar posisi",
            "a ring must be a list of positions",
        )
    ring = [_position(p) for p in raw]
    _check_ring(ring)
    return ring


def _check_ring(ring: list[tuple[float, float]]) -> None:
    if len(ring) < 4:
        raise _err(
            "too-few-points",
            f"Poligon memerlukan minimal 4 titik (titik pertama = terakhir), diterima {len(ring)}",
            f"a polygon ring needs at least 4 points (first = last), got {len(ring)}",
        )
    if ring[0] != ring[-1]:
        raise _err(
            "unclosed-ring",
            "Poligon tidak tertutup: titik pertama dan terakhir harus sama",
            "unclosed ring: the first and last points must be equal",
        )


def _polygonal(geom: BaseGeometry) -> BaseGeometry:
    """The polygonal part of `geom` (dropping lines and points make_valid may leave), possibly empty."""
    parts = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon") and g.area > 0]
    if not parts:
        return Polygon()
    return shapely.union_all(parts)


def _make_polygon(rings: list[list[tuple[float, float]]], warnings: list[str]) -> BaseGeometry:
    for ring in rings:
        _check_positions(ring)
    poly = Polygon(rings[0], rings[1:])
    # The convex hull, not the signed ring area: a bow-tie's two lobes cancel out to zero signed area.
    if shapely.MultiPoint(rings[0]).convex_hull.area == 0:
        raise _err(
            "empty-area",
            "Poligon tidak memiliki luas (titik segaris)",
            "polygon has no area (collinear points)",
        )
    if poly.is_valid:
        return poly
    reason = shapely.is_valid_reason(poly)
    repaired = _polygonal(shapely.make_valid(poly))
    if repaired.is_empty:
        raise _err(
            "self-intersection",
            f"Poligon berpotongan sendiri dan tidak dapat diperbaiki ({reason})",
            f"self-intersecting polygon that cannot be repaired ({reason})",
        )
    warnings.append(
        f"Poligon berpotongan sendiri, diperbaiki menjadi {len(shapely.get_parts(repaired))} bagian / "
        f"self-intersecting polygon repaired into {len(shapely.get_parts(repaired))} part(s) ({reason})"
    )
    return repaired


def _count_vertices(coords: Any, depth: int) -> int:
    if depth == 0:
        return 1
    if not isinstance(coords, list | tuple):
        raise _err("bad-coordinates", "Koordinat harus berupa daftar", "coordinates must be lists")
    return sum(_count_vertices(c, depth - 1) for c in coords)


def _geojson(obj: Any, warnings: list[str], depth: int, *, features: bool) -> BaseGeometry:
    """The one walk over GeoJSON: the union of every polygon in it. `features` is True above the geometries
    (FeatureCollection, Feature); a Feature's geometry and a GeometryCollection's members are geometries only."""
    if depth > MAX_NESTING:
        raise _err("too-deep", "GeoJSON bersarang terlalu dalam", "GeoJSON is nested too deeply")
    if not isinstance(obj, Mapping):
        if features:
            raise _err("bad-geojson", "GeoJSON harus berupa objek", "GeoJSON must be an object")
        raise _err("bad-geojson", "Geometri GeoJSON harus berupa objek", "GeoJSON geometry must be an object")
    kind = obj.get("type")
    if features and kind == "Feature":
        return _geojson(obj.get("geometry"), warnings, depth + 1, features=False)
    if (features and kind == "FeatureCollection") or kind == "GeometryCollection":
        members = obj.get("features" if kind == "FeatureCollection" else "geometries")
        if not isinstance(members, list) or len(members) > MAX_PARTS:
            raise _err("bad-geojson", f"{kind} tidak sah", f"invalid {kind}")
        inner = kind == "FeatureCollection"
        return _union([_geojson(m, warnings, depth + 1, features=inner) for m in members])
    coords = obj.get("coordinates")
    if kind == "Polygon":
        if _count_vertices_safe(coords, 2) > MAX_VERTICES:
            raise _too_many()
        if not isinstance(coords, list) or not coords:
            raise _err("bad-geojson", "Polygon tanpa koordinat", "Polygon has no coordinates")
        return _make_polygon([_ring(r) for r in coords], warnings)
    if kind == "MultiPolygon":
        if _count_vertices_safe(coords, 3) > MAX_VERTICES:
            raise _too_many()
        if not isinstance(coords, list) or not coords or len(coords) > MAX_PARTS:
            raise _err("bad-geojson", "MultiPolygon tanpa koordinat", "MultiPolygon has no coordinates")
        polys = []
        for p in coords:
            if not isinstance(p, list) or not p:
                raise _err("bad-geojson", "Bagian MultiPolygon kosong", "empty MultiPolygon part")
            polys.append(_make_polygon([_ring(r) for r in p], warnings))
        return _union(polys)
    raise _err(
        "unsupported-geometry",
        f"Jenis geometri tidak didukung untuk area: {kind!r}",
        f"geometry type {kind!r} cannot be a target area (use Polygon or MultiPolygon)",
    )


def _count_vertices_safe(coords: Any, depth: int) -> int:
    # Counting walks exactly `depth` list levels; a deeper or shallower shape is reported as such later.
    try:
        return _count_vertices(coords, depth)
    except GeoError:
        return 0


def _too_many() -> GeoError:
    return _err(
        "too-many-vertices",
        f"Poligon terlalu rumit: lebih dari {MAX_VERTICES:,} titik",
        f"polygon too complex: more than {MAX_VERTICES:,} vertices",
    )


def _union(geoms: Iterable[BaseGeometry]) -> BaseGeometry:
    geoms = [g for g in geoms if not g.is_empty]
    if not geoms:
        return Polygon()
    return geoms[0] if len(geoms) == 1 else shapely.union_all(geoms)


def _finish(geom: BaseGeometry, warnings: list[str], codes: Iterable[str]) -> Area:
    geom = _polygonal(geom)
    if geom.is_empty or geom.area == 0:
        raise _err("empty-area", "Area sasaran kosong", "the target area is empty")
    if not geom.is_valid:  # unions of valid parts are valid; this guards against GEOS precision corner cases
        geom = _polygonal(shapely.make_valid(geom))
    if shapely.get_num_coordinates(geom) > MAX_VERTICES * 50:
        # Boundaries from codes may be large; only drawn input is capped at MAX_VERTICES.
        warnings.append("Area sangat rumit / very complex area")
    return Area(geometry=geom, warnings=tuple(warnings), codes=tuple(dict.fromkeys(codes)))


def area_from_codes(codes: Iterable[str]) -> Area:
    """The union of the boundaries of Kemendagri codes (any level).

    Raises: GeoError malformed-code, unknown-code, no-boundary, empty-area.
    """
    codes = [c.strip() for c in codes]
    if not codes:
        raise _err("empty-area", "Tidak ada kode wilayah", "no area codes given")
    geoms = [boundaries.geometry_of(c) for c in codes]
    return _finish(_union(geoms), [], codes)


def area_from_geojson(obj: Mapping[str, Any] | str) -> Area:
    """A GeoJSON Polygon, MultiPolygon, Feature or FeatureCollection (lon,lat) as one area.

    Raises: GeoError (bad-geojson, bad-coordinates, too-deep, too-few-points, unclosed-ring,
    swapped-coordinates,
    outside-indonesia, too-many-vertices, self-intersection, empty-area, unsupported-geometry).
    """
    if isinstance(obj, str | bytes):
        try:
            obj = json.loads(obj)
        except (ValueError, RecursionError) as exc:
            raise _err("bad-geojson", "GeoJSON tidak dapat dibaca", f"unreadable GeoJSON: {exc}") from None
    warnings: list[str] = []
    return _finish(_geojson(obj, warnings, 0, features=True), warnings, [])


def area_from_circle(lon: float, lat: float, radius_km: float) -> Area:
    """A circle of `radius_km` around (lon, lat), built in metres in an azimuthal equidistant projection.

    Raises: GeoError bad-coordinates, bad-radius, swapped-coordinates, outside-indonesia.
    """
    lon, lat, radius = _number(lon), _number(lat), _number(radius_km)
    if not 0 < radius <= MAX_RADIUS_KM:
        raise _err(
            "bad-radius",
            f"Radius harus antara 0 dan {MAX_RADIUS_KM:g} km",
            f"radius must be in (0, {MAX_RADIUS_KM:g}] km",
        )
    _check_positions([(lon, lat)])
    proj = local_metric(lon, lat)
    disc = shapely.Point(0.0, 0.0).buffer(radius * 1000.0, quad_segs=CIRCLE_QUAD_SEGS)
    geom = proj.inverse(disc)
    minx, miny, maxx, maxy = geom.bounds
    _check_positions([(minx, miny), (maxx, maxy)])
    return _finish(geom, [], [])


def _cap_pair(token: str, what: str) -> tuple[float, float]:
    parts = token.split(",")
    try:
        if len(parts) != 2:
            raise ValueError(token)
        lat, lon = float(parts[0]), float(parts[1])
    except ValueError:
        raise _err(
            f"bad-cap-{what}",
            f"Pasangan koordinat CAP tidak sah: {token!r:.40}",
            f"invalid CAP pair {token!r:.40}",
        ) from None
    if not (math.isfinite(lat) and math.isfinite(lon)):
        raise _err("bad-coordinates", "Koordinat tidak hingga", "coordinate is not finite")
    return lon, lat


def area_from_cap_polygon(text: str) -> Area:
    """A CAP <polygon> ("lat,lon lat,lon ...", closed, at least 4 pairs) as an area.

    Raises: GeoError bad-cap-polygon, too-few-points, unclosed-ring, too-many-vertices, swapped-coordinates,
    outside-indonesia, self-intersection, empty-area.
    """
    tokens = text.split()
    if len(tokens) > MAX_VERTICES:
        raise _too_many()
    ring = [_cap_pair(t, "polygon") for t in tokens]
    _check_ring(ring)
    warnings: list[str] = []
    return _finish(_make_polygon([ring], warnings), warnings, [])


def area_from_cap_circle(text: str) -> Area:
    """A CAP <circle> ("lat,lon radius_km") as an area.

    Raises: GeoError bad-cap-circle, bad-radius, swapped-coordinates, outside-indonesia.
    """
    tokens = text.split()
    if len(tokens) != 2:
        raise _err("bad-cap-circle", "Lingkaran CAP harus 'lat,lon radius'", "CAP circle must be 'lat,lon radius'")
    lon, lat = _cap_pair(tokens[0], "circle")
    try:
        radius = float(tokens[1])
    except ValueError:
        raise _err("bad-cap-circle", "Radius lingkaran CAP bukan angka", "CAP circle radius is not a number") from None
    if not math.isfinite(radius):
        raise _err("bad-radius", "Radius tidak hingga", "radius is not finite")
    return area_from_circle(lon, lat, radius)


def area_from_geocode(value_name: str, value: str) -> Area:
    """A CAP <geocode> with valueName KEMENDAGRI (one or more codes separated by spaces or commas).

    Raises: GeoError unsupported-geocode, plus those of `area_from_codes`.
    """
    if value_name.strip().upper() != "KEMENDAGRI":
        raise _err(
            "unsupported-geocode",
            f"Geocode {value_name!r} tidak didukung; gunakan KEMENDAGRI",
            f"geocode {value_name!r} is not supported; use KEMENDAGRI",
        )
    return area_from_codes(value.replace(",", " ").split())


def union_areas(areas: Sequence[Area]) -> Area:
    """One area covering all `areas`, keeping their warnings and codes.

    Raises: GeoError empty-area.
    """
    warnings = [w for a in areas for w in a.warnings]
    codes = [c for a in areas for c in a.codes]
    return _finish(_union([a.geometry for a in areas]), warnings, codes)


def build_area(spec: Mapping[str, Any], _depth: int = 0) -> Area:
    """The area described by a one-key dict spec (see module docstring); unions may nest.

    Raises: GeoError bad-spec or any code of the specific builders.
    """
    if _depth > MAX_NESTING:
        raise _err("too-deep", "Spesifikasi area bersarang terlalu dalam", "area specification nested too deeply")
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise _err("bad-spec", "Spesifikasi area harus satu kunci", "area spec must be an object with one key")
    ((kind, value),) = spec.items()
    try:
        if kind == "codes":
            return area_from_codes([value] if isinstance(value, str) else list(value))
        if kind == "geojson":
            return area_from_geojson(value)
        if kind == "circle":
            return area_from_circle(value["lon"], value["lat"], value["radius_km"])
        if kind == "cap_polygon":
            return area_from_cap_polygon(value)
        if kind == "cap_circle":
            return area_from_cap_circle(value)
        if kind == "geocode":
            return area_from_geocode(value["valueName"], value["value"])
        if kind == "union":
            if not isinstance(value, list) or not value or len(value) > MAX_PARTS:
                raise _err("bad-spec", "Gabungan area harus daftar tidak kosong", "union must be a non-empty list")
            return union_areas([build_area(s, _depth + 1) for s in value])
    except (KeyError, TypeError, AttributeError) as exc:
        raise _err("bad-spec", f"Spesifikasi {kind!r} tidak lengkap", f"incomplete {kind!r} spec ({exc})") from None
    raise _err("bad-spec", f"Jenis area tidak dikenal: {kind!r}", f"unknown area kind {kind!r}")


def as_multipolygon(geom: BaseGeometry) -> MultiPolygon:
    """`geom` (Polygon or MultiPolygon) as a MultiPolygon."""
    if isinstance(geom, MultiPolygon):
        return geom
    assert isinstance(geom, Polygon)
    return MultiPolygon([geom])

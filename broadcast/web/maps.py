"""GeoJSON for the maps: an alert's target area and the kabupaten outlines around it, and the offline base map
(provinsi, kabupaten/kota and kecamatan outlines with their names, in cells).

Drawn by Leaflet as vector layers, so the maps work with no tile server at all.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import shapely
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from broadcast.alerts.models import Alert
from broadcast.alerts.target_area import alert_geometry
from broadcast.errors import NotFound
from geo import boundaries, gazetteer

OUTLINE_SIMPLIFY_DEG = 0.002  # ~200 m: outlines are context, not targets
TARGET_SIMPLIFY_DEG = 0.0002


def _feature(geometry: BaseGeometry, **properties: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": mapping(geometry), "properties": properties}


def alert_feature_collection(alert: Alert) -> dict[str, Any]:
    """The target area (role "target") and the kabupaten/kota outlines it touches or neighbours (role "outline")."""
    target = alert_geometry(alert)
    features: list[dict[str, Any]] = []
    if target is not None:
        features.append(
            _feature(
                target.simplify(TARGET_SIMPLIFY_DEG),
                role="target",
                severity=_severity(alert),
                status=alert.status,
                headline=alert.infos[0].headline if alert.infos else "",
            )
        )
        minx, miny, maxx, maxy = target.bounds
        pad = max(maxx - minx, maxy - miny, 0.05) * 0.5
        for code, outline in boundaries.outlines("kabupaten_kota", (minx - pad, miny - pad, maxx + pad, maxy + pad)):
            place = gazetteer.find_place(code)
            features.append(
                _feature(
                    outline.simplify(OUTLINE_SIMPLIFY_DEG),
                    role="outline",
                    kode=code,
                    nama=place.nama if place else code,
                )
            )
    return {"type": "FeatureCollection", "features": features}


def alerts_feature_collection(alerts: list[Alert]) -> dict[str, Any]:
    """One target feature per alert, for the overview map on the home page."""
    features = []
    for alert in alerts:
        geometry = alert_geometry(alert)
        if geometry is not None:
            features.append(
                _feature(
                    geometry.simplify(OUTLINE_SIMPLIFY_DEG),
                    role="target",
                    severity=_severity(alert),
                    status=alert.status,
                    headline=alert.infos[0].headline if alert.infos else "",
                    url=f"/peringatan/{alert.identifier}",
                )
            )
    return {"type": "FeatureCollection", "features": features}


def _severity(alert: Alert) -> str:
    return alert.infos[0].severity if alert.infos else "Unknown"


@dataclass(frozen=True, slots=True)
class BasemapLevel:
    """How one administrative level is cut into cells and simplified for the offline base map."""

    cell_deg: float  # cells of cell_deg x cell_deg degrees from BASEMAP_ORIGIN
    simplify_deg: float
    precision_deg: float  # coordinates snapped to this grid: smaller files, no visible change at the zoom used


# Indonesia fits in 94..142 E, 12 S..7 N; cells count from its south-west corner.
BASEMAP_ORIGIN = (94.0, -12.0)
BASEMAP_EXTENT = (48.0, 19.0)
BASEMAP_LEVELS = {
    "provinsi": BasemapLevel(cell_deg=50.0, simplify_deg=0.03, precision_deg=0.01),  # one cell: all 38
    "kabupaten_kota": BasemapLevel(cell_deg=4.0, simplify_deg=0.003, precision_deg=0.0005),
    "kecamatan": BasemapLevel(cell_deg=1.0, simplify_deg=0.0005, precision_deg=0.0001),
}


class UnknownBasemapCell(NotFound):
    code = "unknown-basemap-cell"


@lru_cache(maxsize=512)
def basemap_cell(level: str, x: int, y: int) -> str:
    """The outlines and names of every `level` unit touching cell (x, y), as compact GeoJSON text (cached): the
    offline base map, drawn from the packaged boundaries with no tile server. Each feature carries its kode, nama
    and a label point inside it.

    Raises: UnknownBasemapCell (unknown level, or a cell outside Indonesia).
    """
    spec = BASEMAP_LEVELS.get(level)
    columns = math.ceil(BASEMAP_EXTENT[0] / spec.cell_deg) if spec else 0
    rows = math.ceil(BASEMAP_EXTENT[1] / spec.cell_deg) if spec else 0
    if spec is None or not (0 <= x < columns and 0 <= y < rows):
        raise UnknownBasemapCell("Sel peta dasar tidak dikenal / unknown base map cell")
    west, south = BASEMAP_ORIGIN[0] + x * spec.cell_deg, BASEMAP_ORIGIN[1] + y * spec.cell_deg
    features = []
    for code, geometry in boundaries.outlines(level, (west, south, west + spec.cell_deg, south + spec.cell_deg)):
        simple = shapely.set_precision(geometry.simplify(spec.simplify_deg), spec.precision_deg)
        if simple.is_empty:
            continue
        label = geometry.representative_point()
        place = gazetteer.find_place(code)
        features.append(
            _feature(
                simple,
                kode=code,
                nama=place.nama if place else code,
                label=[round(label.x, 4), round(label.y, 4)],
            )
        )
    return json.dumps({"type": "FeatureCollection", "features": features}, separators=(",", ":"))

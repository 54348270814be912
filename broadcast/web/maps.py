"""GeoJSON for the public maps: an alert's target area and the kabupaten outlines around it.

Drawn by Leaflet as vector layers, so the map works with no tile server at all.
"""

from __future__ import annotations

from typing import Any

import shapely
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from broadcast.alerts.models import Alert, AlertArea
from geo import boundaries, gazetteer
from geo.areas import area_from_circle
from geo.errors import GeoError

OUTLINE_SIMPLIFY_DEG = 0.002  # ~200 m: outlines are context, not targets
TARGET_SIMPLIFY_DEG = 0.0002


def area_geometry(area: AlertArea) -> BaseGeometry | None:
    """The area as one geometry: Kemendagri codes, CAP polygons and circles together (None if empty)."""
    parts: list[BaseGeometry] = []
    for code in area.geocodes:
        try:
            parts.append(boundaries.geometry_of(code))
        except GeoError:
            continue
    for ring in area.polygons:
        if len(ring) >= 4:
            polygon = shapely.Polygon([(lon, lat) for lat, lon in ring])
            parts.append(shapely.make_valid(polygon))
    for circle in area.circles:
        try:
            parts.append(area_from_circle(circle["lon"], circle["lat"], circle["radius_km"]).geometry)
        except (GeoError, KeyError):
            continue
    parts = [p for p in parts if not p.is_empty]
    return shapely.union_all(parts) if parts else None


def alert_geometry(alert: Alert) -> BaseGeometry | None:
    """Every area of the alert united."""
    parts = [g for g in (area_geometry(a) for a in alert.areas) if g is not None]
    return shapely.union_all(parts) if parts else None


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

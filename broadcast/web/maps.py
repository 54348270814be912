"""GeoJSON for the public maps: an alert's target area and the kabupaten outlines around it.

Drawn by Leaflet as vector layers, so the map works with no tile server at all.
"""

from __future__ import annotations

from typing import Any

from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from broadcast.alerts.geometry import alert_geometry
from broadcast.alerts.models import Alert
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

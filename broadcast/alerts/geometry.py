"""The geometry an alert targets, from its Kemendagri codes, CAP polygons and circles."""

from __future__ import annotations

import shapely
from shapely.geometry.base import BaseGeometry

from broadcast.alerts.areas import codes_geometry, drawn_geometry, union
from broadcast.alerts.models import Alert, AlertArea
from geo.areas import area_from_circle
from geo.errors import GeoError


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
                parts.append(area_from_circle(circle["lon"], circle["lat"], circle["radius_km"]).geometry)
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

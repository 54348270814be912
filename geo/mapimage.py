"""Map previews without a tile server: a PNG of the target and its CAP polygons; GeoJSON for the web map."""

from __future__ import annotations

import io
import math
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: workers and tests have no display

import matplotlib.pyplot as plt
import shapely
from matplotlib.axes import Axes
from shapely.geometry.base import BaseGeometry

from geo import boundaries
from geo.cap_geometry import CapGeometry
from geo.gazetteer import find_place


def _draw(ax: Axes, geom: BaseGeometry, **style: Any) -> None:
    for poly in shapely.get_parts(geom):
        if poly.geom_type != "Polygon":
            continue
        for ring in (poly.exterior, *poly.interiors):
            xs, ys = ring.xy
            ax.plot(xs, ys, **style)


def _fill(ax: Axes, geom: BaseGeometry, **style: Any) -> None:
    for poly in shapely.get_parts(geom):
        if poly.geom_type == "Polygon":
            xs, ys = poly.exterior.xy
            ax.fill(xs, ys, **style)


def render_png(area: BaseGeometry, cap: CapGeometry | None = None, title: str = "", size_px: int = 900) -> bytes:
    """A PNG (bytes) of the target area, kabupaten/kota outlines with labels, and CAP polygons if given."""
    minx, miny, maxx, maxy = area.bounds if cap is None else shapely.union_all(cap.polygons).union(area).bounds
    pad = max(maxx - minx, maxy - miny) * 0.15 + 0.01
    view = (minx - pad, miny - pad, maxx + pad, maxy + pad)
    fig, ax = plt.subplots(figsize=(size_px / 100, size_px / 100), dpi=100)
    try:
        for kode, geom in boundaries.outlines("kabupaten_kota", view):
            _draw(ax, geom, color="#888888", linewidth=0.6)
            label = geom.intersection(shapely.box(*view)).representative_point()
            place = find_place(kode)
            ax.annotate(
                f"{place.nama if place else kode}\n{kode}",
                (label.x, label.y),
                fontsize=7,
                ha="center",
                color="#444444",
            )
        _fill(ax, area, color="#d62728", alpha=0.35, linewidth=0)
        _draw(ax, area, color="#d62728", linewidth=1.2)
        if cap is not None:
            for poly in cap.polygons:
                _draw(ax, poly, color="#1f4e9c", linewidth=1.2, linestyle="--")
        ax.set_xlim(view[0], view[2])
        ax.set_ylim(view[1], view[3])
        # Plate carrée looks squashed away from the equator; stretch by 1/cos(lat) as web maps roughly do.
        ax.set_aspect(1 / math.cos(math.radians((view[1] + view[3]) / 2)))
        ax.set_xlabel("bujur / longitude")
        ax.set_ylabel("lintang / latitude")
        subtitle = "merah: area sasaran / red: target area"
        if cap is not None:
            subtitle += f"; biru putus-putus: poligon CAP / dashed blue: CAP polygons ({cap.overshoot_m:.0f} m)"
        ax.set_title(f"{title}\n{subtitle}" if title else subtitle, fontsize=9)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", bbox_inches="tight")
        return buf.getvalue()
    finally:
        plt.close(fig)


def map_geojson(area: BaseGeometry, cap: CapGeometry | None = None, codes: tuple[str, ...] = ()) -> dict[str, Any]:
    """A GeoJSON FeatureCollection with the target area (role "target") and the CAP polygons (role "cap")."""
    features: list[dict[str, Any]] = [
        {
            "type": "Feature",
            "properties": {"role": "target", "codes": list(codes)},
            "geometry": shapely.geometry.mapping(area),
        }
    ]
    if cap is not None:
        features.append(
            {
                "type": "Feature",
                "properties": {
                    "role": "cap",
                    "overshoot_m": round(cap.overshoot_m, 1),
                    "target_met": cap.target_met,
                    "polygons": len(cap.polygons),
                },
                "geometry": cap.geojson(),
            }
        )
    return {"type": "FeatureCollection", "features": features}

"""Metric and equal-area projections for geometries stored in EPSG:4326."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import shapely
from pyproj import CRS, Transformer
from shapely.geometry.base import BaseGeometry


@dataclass(frozen=True, slots=True)
class Projection:
    """A pair of vectorised transforms between EPSG:4326 and a projected CRS in metres."""

    forward: Callable[[BaseGeometry], BaseGeometry]
    inverse: Callable[[BaseGeometry], BaseGeometry]


def _wrap(tr: Transformer) -> Callable[[BaseGeometry], BaseGeometry]:
    def apply(geom: BaseGeometry) -> BaseGeometry:
        return shapely.transform(geom, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))

    return apply


@lru_cache(maxsize=256)
def _aeqd(lon: float, lat: float) -> Projection:
    crs = CRS.from_proj4(f"+proj=aeqd +lat_0={lat} +lon_0={lon} +datum=WGS84 +units=m +no_defs")
    return Projection(
        _wrap(Transformer.from_crs("EPSG:4326", crs, always_xy=True)),
        _wrap(Transformer.from_crs(crs, "EPSG:4326", always_xy=True)),
    )


def local_metric(lon: float, lat: float) -> Projection:
    """An azimuthal equidistant projection centred on (lon, lat): true distances from the centre, metres."""
    return _aeqd(float(lon), float(lat))


def metric_for(geom: BaseGeometry) -> Projection:
    """A local metric projection centred on the bounding-box centre of `geom`."""
    minx, miny, maxx, maxy = geom.bounds
    # Rounding the centre lets nearby geometries share one cached transformer at no measurable distortion.
    return local_metric(round((minx + maxx) / 2, 2), round((miny + maxy) / 2, 2))


@lru_cache(maxsize=1)
def _equal_area() -> Projection:
    # Lambert azimuthal equal-area centred on Indonesia: area errors stay far below 0.1 % across the country.
    crs = CRS.from_proj4("+proj=laea +lat_0=-2.5 +lon_0=118 +datum=WGS84 +units=m +no_defs")
    return Projection(
        _wrap(Transformer.from_crs("EPSG:4326", crs, always_xy=True)),
        _wrap(Transformer.from_crs(crs, "EPSG:4326", always_xy=True)),
    )


def equal_area() -> Projection:
    """The equal-area projection used for every area (km²) figure in the geo package."""
    return _equal_area()


def area_km2(geom: BaseGeometry) -> float:
    """Area of an EPSG:4326 geometry in km², computed in the equal-area projection."""
    return float(equal_area().forward(geom).area) / 1e6

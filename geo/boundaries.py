"""Administrative boundaries of Indonesia (EPSG:4326), loaded once per process with an STRtree per level.

This is the only module that reads boundary files. Geometries are keyed by Kemendagri `kode`, never by name.
Desa/kelurahan boundaries exist only for the focus areas (DKI Jakarta, 33.15, 34.04, 72.03, 72.10, 72.71).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import overload

import numpy as np
import shapely
from shapely import STRtree
from shapely.geometry.base import BaseGeometry

from geo.errors import GeoError
from geo.gazetteer import find_place, is_well_formed

BOUNDARIES_FILE = Path(__file__).parent / "data" / "boundaries.npz"
LEVELS = ("provinsi", "kabupaten_kota", "kecamatan", "desa_kelurahan")
SCALE = 10_000_000  # coordinates are stored as int32 in units of 1e-7 degree (1 cm)
ALIASES = {
    "kabupaten": "kabupaten_kota",
    "kota": "kabupaten_kota",
    "desa": "desa_kelurahan",
    "kelurahan": "desa_kelurahan",
}
FOCUS_KABUPATEN = ("31", "33.15", "34.04", "72.03", "72.10", "72.71")


@dataclass(frozen=True, slots=True)
class Level:
    """All boundaries of one administrative level: codes sorted, geometries aligned, and their tree."""

    name: str
    codes: np.ndarray  # str, sorted
    geoms: np.ndarray  # shapely MultiPolygon, aligned with codes
    tree: STRtree

    def index_of(self, code: str) -> int | None:
        """Position of `code` in this level, or None."""
        i = int(np.searchsorted(self.codes, code))
        return i if i < len(self.codes) and self.codes[i] == code else None


def _level_name(level: str) -> str:
    name = ALIASES.get(level, level)
    if name not in LEVELS:
        raise GeoError(
            "unknown-level",
            f"Tingkat wilayah tidak dikenal: {level!r}",
            f"unknown administrative level {level!r}",
        )
    return name


@lru_cache(maxsize=1)
def _archive() -> dict[str, np.ndarray]:
    with np.load(BOUNDARIES_FILE) as npz:
        return {k: npz[k] for k in npz.files}


@lru_cache(maxsize=len(LEVELS))
def load_level(level: str) -> Level:
    """The boundaries of `level` (provinsi .. desa_kelurahan, or an alias), built once per process."""
    name = _level_name(level)
    data = _archive()
    coords = np.cumsum(data[f"{name}/deltas"], axis=0, dtype=np.int64) / SCALE
    offsets = tuple(data[f"{name}/offsets{i}"].astype(np.int64) for i in range(3))
    geoms = shapely.from_ragged_array(shapely.GeometryType.MULTIPOLYGON, coords, offsets)
    shapely.prepare(geoms)
    codes = data[f"{name}/codes"].astype(str)
    return Level(name, codes, geoms, STRtree(geoms))


def level_for_code(code: str) -> str:
    """The level a well-formed code names (by its number of parts)."""
    return LEVELS[code.count(".")]


def find_geometry(code: str) -> BaseGeometry | None:
    """The boundary of `code`, or None when the code is malformed or has no boundary in the package."""
    if not is_well_formed(code):
        return None
    lvl = load_level(level_for_code(code))
    i = lvl.index_of(code)
    return None if i is None else lvl.geoms[i]


def geometry_of(code: str) -> BaseGeometry:
    """The boundary (valid MultiPolygon, EPSG:4326) of `code`.

    Raises: GeoError with code malformed-code, unknown-code or no-boundary (a desa outside the focus areas).
    """
    if not is_well_formed(code):
        raise GeoError("malformed-code", f"Kode wilayah tidak sah: {code!r}", f"malformed area code {code!r}")
    geom = find_geometry(code)
    if geom is not None:
        return geom
    if find_place(code) is None:
        raise GeoError("unknown-code", f"Kode wilayah tidak dikenal: {code}", f"unknown area code {code}")
    raise GeoError(
        "no-boundary",
        f"Batas wilayah desa/kelurahan {code} tidak tersedia (hanya wilayah fokus); pilih kecamatan "
        f"{code.rsplit('.', 1)[0]}",
        f"no boundary for desa {code} (desa boundaries exist only for the focus areas); "
        f"use kecamatan {code.rsplit('.', 1)[0]}",
    )


def nearest_geometry(code: str) -> tuple[str, BaseGeometry] | None:
    """The boundary of `code` or, when it has none (desa outside the focus areas), of its nearest ancestor."""
    while is_well_formed(code):
        geom = find_geometry(code)
        if geom is not None:
            return code, geom
        if "." not in code:
            return None
        code = code.rsplit(".", 1)[0]
    return None


@overload
def codes_at(lon: float, lat: float, level: str) -> str | None: ...
@overload
def codes_at(lon: np.ndarray, lat: np.ndarray, level: str) -> np.ndarray: ...
def codes_at(lon: float | np.ndarray, lat: float | np.ndarray, level: str) -> str | np.ndarray | None:
    """Code of the `level` unit containing each point (boundary included); None / "" where there is none.

    Scalars give a str or None; arrays give a str array with "" for points in no unit.
    """
    lvl = load_level(level)
    scalar = np.ndim(lon) == 0
    pts = shapely.points(np.atleast_1d(np.asarray(lon, dtype=float)), np.atleast_1d(np.asarray(lat, dtype=float)))
    assert isinstance(pts, np.ndarray)  # points of 1-d arrays: an array, never a single Point
    pt_idx, geom_idx = lvl.tree.query(pts, predicate="intersects")
    out = np.full(len(pts), "", dtype=lvl.codes.dtype)
    # Where a point sits on a shared border, the later code in sorted order wins; either answer is right.
    out[pt_idx] = lvl.codes[geom_idx]
    if scalar:
        return str(out[0]) or None
    return out


def locate(lon: float, lat: float) -> dict[str, str | None]:
    """The provinsi, kabupaten_kota, kecamatan and desa_kelurahan codes at a point (None where unknown)."""
    return {level: codes_at(float(lon), float(lat), level) for level in LEVELS}


def outlines(level: str, bbox: tuple[float, float, float, float] | None = None) -> list[tuple[str, BaseGeometry]]:
    """(code, geometry) of every `level` unit intersecting bbox (minlon, minlat, maxlon, maxlat), or all."""
    lvl = load_level(level)
    if bbox is None:
        idx = np.arange(len(lvl.codes))
    else:
        idx = np.sort(lvl.tree.query(shapely.box(*bbox), predicate="intersects"))
    return [(str(lvl.codes[i]), lvl.geoms[i]) for i in idx]


def descendants(code: str, level: str) -> list[tuple[str, BaseGeometry]]:
    """(code, geometry) of every `level` unit whose code lies under `code` in the hierarchy."""
    lvl = load_level(level)
    lo = int(np.searchsorted(lvl.codes, code + "."))
    hi = int(np.searchsorted(lvl.codes, code + "/"))  # "/" sorts right after ".", closing the prefix range
    return [(str(lvl.codes[i]), lvl.geoms[i]) for i in range(lo, hi)]


def intersecting_codes(geometry: BaseGeometry, level: str) -> list[str]:
    """Codes of `level` units whose interiors overlap `geometry` (mere border contact excluded), sorted."""
    lvl = load_level(level)
    idx = lvl.tree.query(geometry, predicate="intersects")
    keep = [i for i in idx if not shapely.touches(lvl.geoms[i], geometry)]
    return sorted(str(lvl.codes[i]) for i in keep)


@lru_cache(maxsize=1)
def indonesia() -> BaseGeometry:
    """The land of all 38 provinsi as one geometry (computed once; about a second)."""
    return shapely.union_all(load_level("provinsi").geoms)

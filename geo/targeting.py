"""Which subscribers does an area reach? Pure and vectorised: arrays in, matching ids out; no database.

A subscriber matches when their point lies in the area (its border included: if in doubt, send) or, for a
subscriber without a point, when the boundary of their admin code lies inside the area (at least
CONTAINED_FRACTION of it: boundaries are simplified). A code whose boundary merely overlaps or touches a drawn
shape is not reached: a 4 m square in a desa must not reach everyone registered for that desa or its kabupaten.

Points are kept in Z-order (Morton) of a 65,536 x 65,536 grid over Indonesia, so every aligned square block of
cells is one contiguous slice. A query walks a quadtree over the area's bounding box: blocks inside the
area are taken whole, blocks outside dropped, and only points in blocks on its outline are tested one by one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from geo import boundaries

GRID_BITS = 16
GRID_N = 1 << GRID_BITS
# Grid extent: Indonesia's bounding box with a margin; points outside it are kept apart and tested directly.
LON0, LAT0, LON1, LAT1 = 94.0, -11.5, 142.0, 6.5
CELL_X = (LON1 - LON0) / GRID_N
CELL_Y = (LAT1 - LAT0) / GRID_N
LEAF_POINTS = 48  # a boundary block with this few points is cheaper to test point by point than to split
START_BLOCKS = 8  # the walk starts at the level where the bounding box spans about this many blocks per side
EPS_DEG = 1e-9  # blocks are widened by this much so float rounding in cell assignment can never lose a point
CONTAINED_FRACTION = 0.95  # a code-only subscriber is reached when this much of their code's boundary is in the area


def contained(geoms: np.ndarray, area: BaseGeometry) -> np.ndarray:
    """For each boundary, whether at least CONTAINED_FRACTION of it lies inside `area` (vectorised)."""
    if geoms.size == 0:
        return np.zeros(0, dtype=bool)
    whole = shapely.area(geoms)
    inside = shapely.area(shapely.intersection(geoms, area))
    return (whole > 0) & (inside >= CONTAINED_FRACTION * whole)


def _spread_bits(v: np.ndarray) -> np.ndarray:
    """Insert a zero bit between each of the low 16 bits of v (uint64), for Morton keys."""
    v = v & 0xFFFF
    v = (v | (v << 8)) & 0x00FF00FF
    v = (v | (v << 4)) & 0x0F0F0F0F
    v = (v | (v << 2)) & 0x33333333
    v = (v | (v << 1)) & 0x55555555
    return v


def _cells(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cx = np.floor((lon - LON0) / CELL_X).astype(np.int64)
    cy = np.floor((lat - LAT0) / CELL_Y).astype(np.int64)
    return cx, cy


def morton(cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
    """Morton (Z-order) key of grid cells (x bits in even positions, y bits in odd)."""
    ux, uy = cx.astype(np.uint64), cy.astype(np.uint64)
    key: np.ndarray = _spread_bits(ux) | (_spread_bits(uy) << np.uint64(1))
    return key


@dataclass(frozen=True, slots=True)
class _CodeGroups:
    """Subscribers without a point, grouped by admin code, with one geometry per code."""

    codes: np.ndarray  # unique codes (str) that have such subscribers and a known geometry
    geoms: np.ndarray  # boundary of each code (or of its nearest ancestor with one)
    starts: np.ndarray  # ids[starts[i]:starts[i+1]] hold the subscribers of codes[i]
    ids: np.ndarray
    tree: shapely.STRtree | None


class SubscriberIndex:
    """An immutable index of subscribers (id, lon, lat, admin code) answering `match(area)` quickly."""

    def __init__(
        self,
        ids: np.ndarray,
        lon: np.ndarray,
        lat: np.ndarray,
        codes: np.ndarray | Sequence[str] | None = None,
    ) -> None:
        """Build from aligned arrays; lon/lat NaN means no point; codes ("" or None for none) are optional."""
        ids = np.asarray(ids, dtype=np.int64)
        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        if not (ids.shape == lon.shape == lat.shape) or ids.ndim != 1:
            raise ValueError("ids, lon and lat must be 1-D arrays of one length")
        has_point = np.isfinite(lon) & np.isfinite(lat)
        in_grid = has_point & (lon >= LON0) & (lon < LON1) & (lat >= LAT0) & (lat < LAT1)
        sel = np.flatnonzero(in_grid)
        cx, cy = _cells(lon[sel], lat[sel])
        keys = morton(cx, cy)
        order = np.argsort(keys, kind="stable")
        self._keys = keys[order]
        take = sel[order]
        del sel, cx, cy, keys, order
        self._ids = ids[take]
        self._lon = lon[take]
        self._lat = lat[take]
        del take
        off = has_point & ~in_grid
        self._off_ids, self._off_lon, self._off_lat = ids[off], lon[off], lat[off]
        self._groups = self._group_codes(ids[~has_point], None if codes is None else np.asarray(codes)[~has_point])
        self.size = int(ids.size)
        self.unresolved_codes: tuple[str, ...] = self._unresolved

    def _group_codes(self, ids: np.ndarray, codes: np.ndarray | None) -> _CodeGroups:
        self._unresolved: tuple[str, ...] = ()
        empty = _CodeGroups(
            np.array([], dtype=str),
            np.array([], dtype=object),
            np.zeros(1, np.int64),
            np.array([], np.int64),
            None,
        )
        if codes is None or ids.size == 0:
            return empty
        codes = np.where(codes == None, "", codes).astype(str)  # noqa: E711 - elementwise test for None
        uniq, inverse = np.unique(codes, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        counts = np.bincount(inverse, minlength=len(uniq))
        starts = np.concatenate([[0], np.cumsum(counts)])
        keep, geoms, unresolved = [], [], []
        for i, code in enumerate(uniq):
            found = boundaries.nearest_geometry(str(code)) if code else None
            if found is None:
                if code:
                    unresolved.append(str(code))
                continue
            keep.append(i)
            geoms.append(found[1])
        self._unresolved = tuple(unresolved)
        if not keep:
            return empty
        kept = np.array(keep)
        sorted_ids = ids[order]
        parts = [sorted_ids[starts[i] : starts[i + 1]] for i in kept]
        new_starts = np.concatenate([[0], np.cumsum([len(p) for p in parts])])
        geom_arr = np.array(geoms, dtype=object)
        return _CodeGroups(uniq[kept], geom_arr, new_starts, np.concatenate(parts), shapely.STRtree(geom_arr))

    def _block_ranges(self, bx: np.ndarray, by: np.ndarray, level: int) -> tuple[np.ndarray, np.ndarray]:
        lo = morton(bx << level, by << level)
        hi = lo + np.uint64(1 << (2 * level))
        return np.searchsorted(self._keys, lo), np.searchsorted(self._keys, hi)

    def _point_positions(self, area: BaseGeometry) -> np.ndarray:
        """Positions (into the sorted arrays) of points in `area`."""
        minx, miny, maxx, maxy = area.bounds
        if maxx < LON0 or minx >= LON1 or maxy < LAT0 or miny >= LAT1 or self._keys.size == 0:
            return np.array([], dtype=np.int64)
        x0, y0 = _cells(np.array([max(minx, LON0)]), np.array([max(miny, LAT0)]))
        x1, y1 = _cells(np.array([min(maxx, LON1 - CELL_X / 2)]), np.array([min(maxy, LAT1 - CELL_Y / 2)]))
        span = int(max(x1[0] - x0[0], y1[0] - y0[0])) + 1
        level = max(0, int(np.ceil(np.log2(max(span / START_BLOCKS, 1)))))
        level = min(level, GRID_BITS)
        gx = np.arange(x0[0] >> level, (x1[0] >> level) + 1, dtype=np.int64)
        gy = np.arange(y0[0] >> level, (y1[0] >> level) + 1, dtype=np.int64)
        bx, by = (a.ravel() for a in np.meshgrid(gx, gy))
        none = np.array([], dtype=np.int64)
        whole_lo, whole_hi, test_lo, test_hi = [none], [none], [none], [none]
        while bx.size:
            lo, hi = self._block_ranges(bx, by, level)
            nonempty = hi > lo
            bx, by, lo, hi = bx[nonempty], by[nonempty], lo[nonempty], hi[nonempty]
            if not bx.size:
                break
            size = 1 << level
            boxes = shapely.box(
                LON0 + (bx * size) * CELL_X - EPS_DEG,
                LAT0 + (by * size) * CELL_Y - EPS_DEG,
                LON0 + ((bx + 1) * size) * CELL_X + EPS_DEG,
                LAT0 + ((by + 1) * size) * CELL_Y + EPS_DEG,
            )
            inside = shapely.contains(area, boxes)
            touching = ~inside & shapely.intersects(area, boxes)
            whole_lo.append(lo[inside])
            whole_hi.append(hi[inside])
            leaf = touching & ((hi - lo <= LEAF_POINTS) | (level == 0))
            test_lo.append(lo[leaf])
            test_hi.append(hi[leaf])
            split = touching & ~leaf
            if not split.any():
                break
            level -= 1
            sx, sy = bx[split] << 1, by[split] << 1
            bx = np.concatenate([sx, sx + 1, sx, sx + 1])
            by = np.concatenate([sy, sy, sy + 1, sy + 1])
        whole = _ranges_to_positions(np.concatenate(whole_lo), np.concatenate(whole_hi))
        cand = _ranges_to_positions(np.concatenate(test_lo), np.concatenate(test_hi))
        hit = cand[shapely.intersects_xy(area, self._lon[cand], self._lat[cand])]
        return np.concatenate([whole, hit])

    def match(self, area: BaseGeometry) -> np.ndarray:
        """Ids (int64) of every subscriber the area reaches, each exactly once, sorted ascending."""
        shapely.prepare(area)
        pos = self._point_positions(area)
        out = [self._ids[pos]]
        if self._off_ids.size:
            out.append(self._off_ids[shapely.intersects_xy(area, self._off_lon, self._off_lat)])
        groups = self._groups
        if groups.tree is not None:
            gi = groups.tree.query(area, predicate="intersects")
            gi = gi[contained(groups.geoms[gi], area)]
            if gi.size:
                out.append(_ranges_to_positions(groups.starts[gi], groups.starts[gi + 1]).astype(np.int64))
                out[-1] = groups.ids[out[-1]]
        # Each row lands in exactly one branch above, so the ids are already unique: sorting is enough.
        return np.sort(np.concatenate(out))

    def iter_match(self, area: BaseGeometry, batch_size: int = 1000) -> Iterator[np.ndarray]:
        """The ids of `match(area)` in ascending batches of at most batch_size."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        ids = self.match(area)
        for start in range(0, ids.size, batch_size):
            yield ids[start : start + batch_size]


def _ranges_to_positions(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Concatenate arange(lo[i], hi[i]) for all i without a Python loop."""
    lengths = hi - lo
    total = int(lengths.sum())
    if total == 0:
        return np.array([], dtype=np.int64)
    # Each output step is +1, except at the start of a range where it jumps to that range's lo.
    steps = np.ones(total, dtype=np.int64)
    nz = lengths > 0
    lo, lengths = lo[nz], lengths[nz]
    heads = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    steps[heads] = lo - np.concatenate([[0], lo[:-1] + lengths[:-1] - 1])
    steps[0] = lo[0]
    return np.cumsum(steps)


def brute_force_match(
    area: BaseGeometry, ids: np.ndarray, lon: np.ndarray, lat: np.ndarray, codes: np.ndarray | None = None
) -> np.ndarray:
    """Reference answer for tests and benchmarks: the same rule as `SubscriberIndex.match`, one by one."""
    has_point = np.isfinite(lon) & np.isfinite(lat)
    hit = has_point & shapely.intersects_xy(area, np.nan_to_num(lon), np.nan_to_num(lat))
    if codes is not None:
        for i in np.flatnonzero(~has_point):
            found = boundaries.nearest_geometry(str(codes[i])) if codes[i] else None
            if found is not None and contained(np.array([found[1]], dtype=object), area)[0]:
                hit[i] = True
    return np.sort(np.asarray(ids, dtype=np.int64)[hit])

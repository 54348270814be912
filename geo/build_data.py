"""Build the packaged boundary file `geo/data/boundaries.npz` from the shared GeoJSON, once, by hand.

Usage: ``python -m geo.build_data /work/shared/data`` (reads ``boundaries/*.geojson``). Nothing at run time
imports this module; the product reads only the committed ``boundaries.npz``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from geo.boundaries import BOUNDARIES_FILE, LEVELS, SCALE

SOURCES = {
    "provinsi": ["id_provinsi.geojson"],
    "kabupaten_kota": ["id_kabupaten_kota.geojson"],
    "kecamatan": ["id_kecamatan.geojson"],
    "desa_kelurahan": ["focus_desa_kelurahan.geojson"],
}


def _read_level(root: Path, level: str) -> tuple[list[str], np.ndarray]:
    codes: list[str] = []
    geoms = []
    for name in SOURCES[level]:
        doc = json.loads((root / "boundaries" / name).read_text(encoding="utf-8"))
        for feat in doc["features"]:
            codes.append(feat["properties"]["kode"])
            geoms.append(shapely.geometry.shape(feat["geometry"]))
    order = np.argsort(np.array(codes))
    return [codes[i] for i in order], np.array(geoms, dtype=object)[order]


def build(root: Path, out: Path = BOUNDARIES_FILE) -> dict[str, int]:
    """Write the npz (int32 coordinates at 1e-7 degree, ragged offsets, codes); return counts."""
    arrays: dict[str, Any] = {}  # Any: numpy's stubs read ** keys as possibly `allow_pickle`
    counts: dict[str, int] = {}
    for level in LEVELS:
        codes, geoms = _read_level(root, level)
        multi = np.array(
            [g if g.geom_type == "MultiPolygon" else shapely.MultiPolygon([g]) for g in geoms], dtype=object
        )
        if not shapely.is_valid(multi).all():
            raise SystemExit(f"{level}: invalid geometry in source")
        gtype, coords, offsets = shapely.to_ragged_array(multi)
        ints = np.rint(coords * SCALE).astype(np.int32)
        # Source vertices sit on a 1e-5 grid except a few made by make_valid; at 1e-7 degrees (1 cm) the
        # integer form moves none by more than half a centimetre: prove that, and validity, before writing.
        rebuilt = shapely.from_ragged_array(gtype, ints / SCALE, offsets)
        if not shapely.equals_exact(rebuilt, multi, tolerance=1e-7).all() or not shapely.is_valid(rebuilt).all():
            raise SystemExit(f"{level}: round trip changed a geometry")
        # Delta-encoding consecutive vertices makes the deflate stream about half the size.
        deltas = np.diff(ints, axis=0, prepend=np.zeros((1, 2), dtype=np.int32))
        arrays[f"{level}/codes"] = np.array(codes)
        arrays[f"{level}/deltas"] = deltas
        for i, off in enumerate(offsets):
            arrays[f"{level}/offsets{i}"] = off.astype(np.int32)
        counts[level] = len(codes)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as fh:
        np.savez_compressed(fh, **arrays)
    return counts


def main(argv: list[str] | None = None) -> None:
    """Command line entry: build from the shared data folder given as the only argument."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m geo.build_data /path/to/shared/data")
    counts = build(Path(args[0]))
    print(f"wrote {BOUNDARIES_FILE} ({BOUNDARIES_FILE.stat().st_size:,} bytes): {counts}")


if __name__ == "__main__":
    main()

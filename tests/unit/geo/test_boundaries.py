import subprocess
import sys

import numpy as np
import pytest

from geo import boundaries
from geo.crs import area_km2
from geo.errors import GeoError


@pytest.mark.parametrize(
    ("lon", "lat", "kab"),
    [
        (119.87, -0.90, "72.71"),
        (110.43, -7.60, "34.04"),
        (110.92, -7.09, "33.15"),
        (106.8272, -6.1754, "31.71"),
    ],
)
def test_known_points_fall_in_the_right_kabupaten(lon, lat, kab):
    got = boundaries.locate(lon, lat)
    assert got["kabupaten_kota"] == kab
    assert got["provinsi"] == kab[:2]
    assert got["kecamatan"].startswith(kab + ".")
    assert got["desa_kelurahan"].startswith(got["kecamatan"] + ".")


def test_counts_per_level():
    counts = {lvl: len(boundaries.load_level(lvl).codes) for lvl in boundaries.LEVELS}
    assert counts == {"provinsi": 38, "kabupaten_kota": 514, "kecamatan": 7285, "desa_kelurahan": 1022}


def test_all_geometries_valid_multipolygons():
    import shapely

    for lvl in boundaries.LEVELS:
        geoms = boundaries.load_level(lvl).geoms
        assert shapely.is_valid(geoms).all()
        assert set(shapely.get_type_id(geoms)) == {shapely.GeometryType.MULTIPOLYGON}


def test_known_areas():
    assert area_km2(boundaries.geometry_of("72.71")) == pytest.approx(357, rel=0.01)
    assert area_km2(boundaries.geometry_of("33.15")) == pytest.approx(2024, rel=0.01)


def test_vectorised_codes_at_and_outside():
    codes = boundaries.codes_at(np.array([119.87, 100.0]), np.array([-0.90, 20.0]), "kabupaten")
    assert list(codes) == ["72.71", ""]
    assert boundaries.codes_at(100.0, 20.0, "provinsi") is None


@pytest.mark.parametrize(
    ("code", "err"), [("99.99", "unknown-code"), ("7271", "malformed-code"), ("11.01.01.2001", "no-boundary")]
)
def test_geometry_of_errors(code, err):
    with pytest.raises(GeoError) as exc:
        boundaries.geometry_of(code)
    assert exc.value.code == err


def test_outlines_bbox_and_descendants():
    near_palu = [c for c, _ in boundaries.outlines("kabupaten_kota", (119.8, -0.95, 119.9, -0.85))]
    assert "72.71" in near_palu
    assert [c for c, _ in boundaries.descendants("72.71", "kecamatan")] == [
        f"72.71.0{i}" for i in range(1, 9)
    ]


def test_packaged_data_loads_without_shared_folder():
    # An audit hook records every file the geo package opens while loading everything it ships.
    code = """
import sys
opened = []
sys.addaudithook(lambda ev, args: opened.append(str(args[0])) if ev == "open" and args else None)
from geo import boundaries, gazetteer, reach
for lvl in boundaries.LEVELS:
    boundaries.load_level(lvl)
gazetteer.find_place("72.71"); reach.population_by_kode()
bad = [p for p in opened if "shared" in p]
assert not bad, bad
assert any(p.endswith("boundaries.npz") for p in opened)
"""
    subprocess.run([sys.executable, "-c", code], check=True)


def test_no_geo_module_reads_shared_at_run_time():
    from pathlib import Path

    import geo

    for path in Path(geo.__file__).parent.glob("*.py"):
        if path.name != "build_data.py":
            assert "/shared" not in path.read_text(encoding="utf-8"), path

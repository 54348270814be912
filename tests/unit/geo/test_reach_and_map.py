import json

import pytest

from geo.areas import build_area
from geo.cap_geometry import cap_polygons
from geo.mapimage import map_geojson, render_png
from geo.reach import estimate_reach, population_by_kode


def test_whole_kabupaten_reaches_its_population():
    reach = estimate_reach(build_area({"codes": ["33.15"]}).geometry)
    assert reach.total == pytest.approx(population_by_kode()["33.15"], rel=0.01)
    assert reach.parts[0].kode == "33.15"


def test_part_of_a_kabupaten_is_apportioned_by_area():
    area = build_area({"codes": ["72.71.01"]})
    reach = estimate_reach(area.geometry)
    palu = next(p for p in reach.parts if p.kode == "72.71")
    assert 0 < palu.fraction < 1
    assert palu.estimated == round(palu.population * palu.fraction)


def test_png_and_geojson_preview():
    area = build_area({"circle": {"lon": 110.446, "lat": -7.54, "radius_km": 25}})
    cap = cap_polygons(area.geometry)
    png = render_png(area.geometry, cap, title="Merapi")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    fc = map_geojson(area.geometry, cap, area.codes)
    assert [f["properties"]["role"] for f in fc["features"]] == ["target", "cap"]
    json.dumps(fc)

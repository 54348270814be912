import pytest
import shapely

from geo.areas import area_from_cap_polygon, build_area
from geo.cap_geometry import MAX_VERTICES, cap_polygons

SPECS = [
    {"codes": ["33.15"]},
    {"codes": ["72.71"]},
    {"codes": ["31.01"]},  # Kepulauan Seribu: many small islands
    {"codes": ["72.10", "72.71"]},  # Sigi wraps around part of Palu
    {"circle": {"lon": 110.446, "lat": -7.54, "radius_km": 25}},
    {"codes": ["34.04.16.2005"]},
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: str(s)[:40])
def test_cap_polygons_cover_the_target_with_at_most_100_vertices(spec):
    target = build_area(spec).geometry
    cap = cap_polygons(target)
    assert all(len(p.exterior.coords) <= MAX_VERTICES for p in cap.polygons)
    assert all(p.is_valid and not p.interiors for p in cap.polygons)
    assert shapely.union_all(cap.polygons).covers(target)
    assert cap.overshoot_m >= 0
    assert cap.target_met == (cap.overshoot_m <= 161)


def test_cap_strings_round_trip_and_still_cover():
    target = build_area({"codes": ["72.71"]}).geometry
    cap = cap_polygons(target)
    for text in cap.cap_strings():
        pairs = text.split()
        assert pairs[0] == pairs[-1] and len(pairs) <= MAX_VERTICES
        lat, lon = map(float, pairs[0].split(","))
        assert -1.5 < lat < 0 and 119 < lon < 121  # lat first, as CAP requires
    back = shapely.union_all([area_from_cap_polygon(t).geometry for t in cap.cap_strings()])
    assert back.covers(target)
    assert cap.geojson()["type"] == "MultiPolygon"


def test_small_polygon_is_kept_nearly_as_is_and_meets_the_161_m_aim():
    target = area_from_cap_polygon("-7.0,110.0 -7.0,110.1 -7.1,110.1 -7.1,110.0 -7.0,110.0").geometry
    cap = cap_polygons(target)
    assert cap.target_met and cap.overshoot_m < 20


def test_a_province_reports_when_161_m_is_out_of_reach():
    cap = cap_polygons(build_area({"codes": ["33"]}).geometry)
    assert not cap.target_met
    assert "does not allow" in cap.note

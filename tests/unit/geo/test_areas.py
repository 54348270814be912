import json
import math

import pytest
from pyproj import Geod

from geo.areas import area_from_cap_circle, area_from_cap_polygon, area_from_geojson, build_area
from geo.errors import GeoError

SQUARE = [[110.0, -7.0], [110.1, -7.0], [110.1, -7.1], [110.0, -7.1], [110.0, -7.0]]


def geodesic_km2(geom):
    return abs(Geod(ellps="WGS84").geometry_area_perimeter(geom)[0]) / 1e6


@pytest.mark.parametrize(("lon", "lat"), [(110.446, -7.54), (119.87, -0.9), (140.7, -2.5), (95.3, 5.5)])
def test_10_km_circle_has_the_right_area(lon, lat):
    area = build_area({"circle": {"lon": lon, "lat": lat, "radius_km": 10}})
    assert geodesic_km2(area.geometry) == pytest.approx(math.pi * 100, rel=0.01)


def test_cap_circle_is_lat_lon_and_km():
    area = area_from_cap_circle("-7.54,110.446 10")
    c = area.geometry.centroid
    assert (c.x, c.y) == pytest.approx((110.446, -7.54), abs=1e-3)


def test_codes_geocode_geojson_and_union():
    area = build_area(
        {
            "union": [
                {"codes": ["33.15"]},
                {"geocode": {"valueName": "KEMENDAGRI", "value": "72.71"}},
                {
                    "geojson": {
                        "type": "Feature",
                        "properties": {},
                        "geometry": {"type": "Polygon", "coordinates": [SQUARE]},
                    }
                },
                {"cap_polygon": "-7.0,110.0 -7.0,110.1 -7.1,110.1 -7.0,110.0"},
            ]
        }
    )
    assert area.codes == ("33.15", "72.71")
    assert area.geometry.is_valid and area.geometry.geom_type == "MultiPolygon"
    assert not area.warnings


def test_desa_code_of_focus_area_and_geojson_string():
    assert build_area({"codes": ["72.71.01.1010"]}).geometry.area > 0
    fc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "MultiPolygon", "coordinates": [[SQUARE]]},
                "properties": {},
            }
        ],
    }
    assert area_from_geojson(json.dumps(fc)).geometry.area == pytest.approx(0.01)


def test_self_intersection_is_repaired_and_said():
    bowtie = "-7.0,110.0 -7.1,110.1 -7.0,110.1 -7.1,110.0 -7.0,110.0"
    area = area_from_cap_polygon(bowtie)
    assert area.geometry.is_valid
    assert area.geometry.area == pytest.approx(0.005)
    assert any("self-intersecting" in w for w in area.warnings)


def deep(n):
    v = [110.0, -7.0]
    for _ in range(n):
        v = [v]
    return v


@pytest.mark.parametrize(
    ("spec", "code"),
    [
        ({"cap_polygon": "-7.0,110.0 -7.1,110.1 -7.0,110.1"}, "too-few-points"),
        ({"cap_polygon": "-7.0,110.0 -7.1,110.1 -7.0,110.1 -7.1,110.2"}, "unclosed-ring"),
        ({"geojson": {"type": "Polygon", "coordinates": [SQUARE[:-1]]}}, "unclosed-ring"),
        (
            {"geojson": {"type": "Polygon", "coordinates": [[[lat, lon] for lon, lat in SQUARE]]}},
            "swapped-coordinates",
        ),
        ({"cap_polygon": "110.0,-7.0 110.1,-7.0 110.1,-7.1 110.0,-7.0"}, "swapped-coordinates"),
        ({"cap_polygon": "51.5,-0.1 51.6,-0.1 51.6,0.0 51.5,-0.1"}, "outside-indonesia"),
        ({"circle": {"lon": 2.35, "lat": 48.85, "radius_km": 5}}, "outside-indonesia"),
        (
            {
                "geojson": {
                    "type": "Polygon",
                    "coordinates": [
                        [
                            [
                                110 + 0.1 * math.cos(i / 10_001 * 2 * math.pi),
                                -7 + 0.1 * math.sin(i / 10_001 * 2 * math.pi),
                            ]
                            for i in range(10_001)
                        ]
                        + [[110.1, -7.0]]
                    ],
                }
            },
            "too-many-vertices",
        ),
        ({"cap_polygon": "-7.0,110.0 -7.0,110.1 -7.0,110.2 -7.0,110.0"}, "empty-area"),
        # Out along two edges and back the same way: it encloses nothing, so no repair can give an area.
        ({"cap_polygon": "-7.0,110.0 -7.0,110.1 -7.1,110.1 -7.0,110.1 -7.0,110.0"}, "self-intersection"),
        ({"codes": ["33.99"]}, "unknown-code"),
        ({"codes": ["33.15; DROP"]}, "malformed-code"),
        ({"codes": ["11.01.01.2001"]}, "no-boundary"),
        ({"codes": []}, "empty-area"),
        (
            {
                "geojson": {
                    "type": "Polygon",
                    "coordinates": [[["110", "-7"], [110.1, -7], [110.1, -7.1], ["110", "-7"]]],
                }
            },
            "bad-coordinates",
        ),
        (
            {
                "geojson": {
                    "type": "Polygon",
                    "coordinates": [
                        [[110.0, float("nan")], [110.1, -7], [110.1, -7.1], [110.0, float("nan")]]
                    ],
                }
            },
            "bad-coordinates",
        ),
        ({"geojson": {"type": "Polygon", "coordinates": [[deep(40)] * 4]}}, "too-deep"),
        ({"geojson": {"type": "Point", "coordinates": [110.0, -7.0]}}, "unsupported-geometry"),
        ({"geojson": "{not json"}, "bad-geojson"),
        ({"cap_polygon": "a,b c,d e,f a,b"}, "bad-cap-polygon"),
        ({"cap_circle": "-7.54,110.446"}, "bad-cap-circle"),
        ({"cap_circle": "-7.54,110.446 -3"}, "bad-radius"),
        ({"geocode": {"valueName": "FIPS6", "value": "006113"}}, "unsupported-geocode"),
        ({"circle": {"lon": 110.4}}, "bad-spec"),
        ({"hexagon": 1}, "bad-spec"),
        (
            {
                "union": [
                    {
                        "union": [
                            {"union": [{"union": [{"union": [{"union": [{"union": [{"codes": ["72"]}]}]}]}]}]}
                        ]
                    }
                ]
            },
            "too-deep",
        ),
    ],
)
def test_bad_input_gives_its_error_code(spec, code):
    with pytest.raises(GeoError) as exc:
        build_area(spec)
    assert exc.value.code == code
    assert " / " in str(exc.value)  # Indonesian first, then English

"""Uploaded areas: GeoJSON, zipped Shapefiles (any projection with a .prj) and KML become lon/lat polygons;
anything else is refused with a reason."""

import io
import zipfile

import pytest
import shapefile
from pyproj import CRS, Transformer

from geo.errors import GeoError
from geo.uploads import parse_upload

SQUARE = [(110.90, -7.10), (110.95, -7.10), (110.95, -7.05), (110.90, -7.05), (110.90, -7.10)]


def _zip_shapefile(points, prj: str | None = None) -> bytes:
    shp, shx, dbf = io.BytesIO(), io.BytesIO(), io.BytesIO()
    with shapefile.Writer(shp=shp, shx=shx, dbf=dbf, shapeType=shapefile.POLYGON) as w:
        w.field("name", "C")
        w.poly([list(reversed(points))])  # shapefile outer rings run clockwise
        w.record("area")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("data/area.shp", shp.getvalue())
        z.writestr("data/area.shx", shx.getvalue())
        z.writestr("data/area.dbf", dbf.getvalue())
        if prj:
            z.writestr("data/area.prj", prj)
    return buf.getvalue()


def test_shapefile_in_utm_is_reprojected_to_lonlat():
    utm = CRS.from_epsg(32749)  # WGS 84 / UTM 49S, what Central Java surveys use
    to_utm = Transformer.from_crs(4326, utm, always_xy=True)
    projected = [to_utm.transform(x, y) for x, y in SQUARE]
    fmt, geom, count = parse_upload("area.zip", _zip_shapefile(projected, utm.to_wkt("WKT1_ESRI")))
    assert (fmt, count) == ("shapefile", 1)
    assert geom.bounds == pytest.approx((110.90, -7.10, 110.95, -7.05), abs=1e-6)


def test_projected_shapefile_without_prj_is_refused():
    to_utm = Transformer.from_crs(4326, 32749, always_xy=True)
    with pytest.raises(GeoError) as err:
        parse_upload("area.zip", _zip_shapefile([to_utm.transform(x, y) for x, y in SQUARE]))
    assert err.value.code == "not-lonlat"


def test_kml_with_a_hole():
    outer = " ".join(f"{x},{y}" for x, y in SQUARE)
    hole = "110.92,-7.08 110.93,-7.08 110.93,-7.07 110.92,-7.07 110.92,-7.08"
    kml = (
        '<kml xmlns="http://www.opengis.net/kml/2.2"><Document><Placemark><Polygon>'
        f"<outerBoundaryIs><LinearRing><coordinates>{outer}</coordinates></LinearRing></outerBoundaryIs>"
        f"<innerBoundaryIs><LinearRing><coordinates>{hole}</coordinates></LinearRing></innerBoundaryIs>"
        "</Polygon></Placemark></Document></kml>"
    )
    fmt, geom, _ = parse_upload("zone.kml", kml.encode())
    assert fmt == "kml" and len(geom.interiors) == 1


def test_geojson_multipolygon_feature_collection():
    fc = (
        '{"type": "FeatureCollection", "features": ['
        '{"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [[[110.9, -7.1], '
        '[110.95, -7.1], [110.95, -7.05], [110.9, -7.1]]]}},'
        '{"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [[[111.0, -7.1], '
        '[111.05, -7.1], [111.05, -7.05], [111.0, -7.1]]]}}]}'
    )
    fmt, geom, count = parse_upload("x.json", fc.encode())
    assert (fmt, count, geom.geom_type) == ("geojson", 2, "MultiPolygon")


@pytest.mark.parametrize(
    ("name", "data", "code"),
    [
        ("a.geojson", b"", "empty-upload"),
        ("a.geojson", b"[1, 2]", "bad-geojson"),
        ("a.geojson", b'{"type": "LineString", "coordinates": [[110.9, -7.1], [111, -7]]}', "not-polygonal"),
        ("a.kml", b'<kml xmlns="http://www.opengis.net/kml/2.2"><Point><coordinates>1,2</coordinates></Point></kml>',
         "not-polygonal"),
        ("a.kml", b'<!DOCTYPE x [<!ENTITY a "b">]><kml>&a;</kml>', "bad-kml"),
        ("a.zip", b"PK\x03\x04garbage", "bad-zip"),
        ("a.bin", b"\x00\x01\x02", "unsupported-format"),
    ],
)
def test_refused_with_a_reason(name, data, code):
    with pytest.raises(GeoError) as err:
        parse_upload(name, data)
    assert err.value.code == code and err.value.message_en

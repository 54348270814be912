"""Areas uploaded by an operator: GeoJSON, a zipped Shapefile or KML in, one polygonal geometry (EPSG:4326) out.

Pure parsing: bytes and a file name in, shapely out. Anything that is not a polygon (points, lines) is refused
rather than silently dropped, so the operator never targets less than they think.

Size caps are checked before the expensive step they protect: JSON nesting before `json.loads` (no
RecursionError), the .shp size and each record's point count before a geometry is built, KML coordinate counts
before polygons are built. The vertex and part caps are those of a drawn area (geo.areas), since the composer
sends the upload to /areas/resolve next. The codes in OVERSIZE are "too large" (HTTP 413), the others "bad" (422).
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from typing import Any

import shapefile
import shapely
from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.geometry.base import BaseGeometry

from geo.areas import MAX_PARTS, MAX_VERTICES
from geo.errors import GeoError

MAX_UPLOAD_BYTES = 5_000_000
MAX_SHAPES = 5_000
MAX_UNZIPPED_BYTES = 50_000_000
MAX_JSON_DEPTH = 32  # a FeatureCollection of GeometryCollections of MultiPolygons needs about 10
# The largest .shp that can hold MAX_SHAPES records of MAX_PARTS parts and MAX_VERTICES points in all, with Z and M.
MAX_SHP_BYTES = 100 + MAX_SHAPES * (8 + 44 + 32) + 4 * MAX_PARTS + 32 * MAX_VERTICES
OVERSIZE = frozenset({"upload-too-large", "too-many-shapes", "too-many-parts", "too-many-vertices"})
FORMATS = ("geojson", "shapefile", "kml")
KML_NS = "{http://www.opengis.net/kml/2.2}"


def _bad(code: str, id_msg: str, en_msg: str) -> GeoError:
    return GeoError(code, id_msg, en_msg)


def detect_format(filename: str, data: bytes) -> str:
    """ "geojson", "shapefile" (a .zip) or "kml", from the name, else from the first bytes.

    Raises: GeoError (unsupported-format).
    """
    name = filename.lower()
    if name.endswith((".geojson", ".json")):
        return "geojson"
    if name.endswith(".zip") or data[:4] == b"PK\x03\x04":
        return "shapefile"
    if name.endswith(".kml"):
        return "kml"
    head = data[:200].lstrip()
    if head.startswith(b"{"):
        return "geojson"
    if head.startswith(b"<"):
        return "kml"
    raise _bad(
        "unsupported-format",
        "Format berkas tidak didukung: kirim GeoJSON, Shapefile (.zip) atau KML",
        "unsupported file format: send GeoJSON, a zipped Shapefile or KML",
    )


def parse_upload(filename: str, data: bytes) -> tuple[str, BaseGeometry, int]:
    """(format, polygonal geometry in EPSG:4326, number of shapes read) from an uploaded file.

    Raises: GeoError (empty, too large, unreadable, not polygonal, outside lon/lat range).
    """
    if not data:
        raise _bad("empty-upload", "Berkas kosong", "the file is empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise _bad(
            "upload-too-large",
            f"Berkas lebih dari {MAX_UPLOAD_BYTES} byte",
            f"file larger than {MAX_UPLOAD_BYTES} bytes",
        )
    fmt = detect_format(filename, data)
    parts = {"geojson": _geojson, "shapefile": _shapefile, "kml": _kml}[fmt](data)
    if not parts:
        raise _bad("no-polygon", "Tidak ada poligon di berkas", "no polygon in the file")
    if len(parts) > MAX_SHAPES:
        raise _bad("too-many-shapes", f"Lebih dari {MAX_SHAPES} bentuk", f"more than {MAX_SHAPES} shapes")
    polys: list[Polygon] = []
    for part in parts:
        if isinstance(part, Polygon):
            polys.append(part)
        elif isinstance(part, MultiPolygon):
            polys.extend(part.geoms)
        else:
            raise _bad(
                "not-polygonal",
                f"Berkas berisi {part.geom_type}, bukan poligon: wilayah harus berupa area",
                f"the file holds a {part.geom_type}, not a polygon: an alert area must be an area",
            )
    geom = MultiPolygon(polys) if len(polys) > 1 else polys[0]
    minx, miny, maxx, maxy = geom.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise _bad(
            "not-lonlat",
            "Koordinat di luar bujur/lintang: berkas harus EPSG:4326 atau menyertakan .prj",
            "coordinates are not longitude/latitude: use EPSG:4326 or include the .prj",
        )
    return fmt, geom, len(parts)


def _too_many_vertices() -> GeoError:
    return _bad(
        "too-many-vertices",
        f"Berkas berisi lebih dari {MAX_VERTICES:,} titik: sederhanakan dulu",
        f"the file holds more than {MAX_VERTICES:,} vertices: simplify it first",
    )


def _too_many_parts() -> GeoError:
    return _bad(
        "too-many-parts",
        f"Berkas berisi lebih dari {MAX_PARTS:,} bagian poligon",
        f"the file holds more than {MAX_PARTS:,} polygon parts",
    )


_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth(data: bytes) -> int:
    """How deeply the arrays and objects of a JSON text nest (strings skipped), without parsing it."""
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for byte in brackets:
        if byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _positions(coords: Any, depth: int) -> tuple[int, int]:
    """(vertices, rings) of a coordinates array `depth` list levels above its positions; -1 vertices when the
    shape is wrong (left to shapely to explain)."""
    if not isinstance(coords, list):
        return -1, 0
    if depth == 1:
        return len(coords), 1
    vertices = rings = 0
    for c in coords:
        v, r = _positions(c, depth - 1)
        if v < 0:
            return -1, 0
        vertices, rings = vertices + v, rings + r
    return vertices, rings


_COORD_DEPTH = {"Point": 0, "MultiPoint": 1, "LineString": 1, "MultiLineString": 2, "Polygon": 2, "MultiPolygon": 3}


def _geojson(data: bytes) -> list[BaseGeometry]:
    if json_depth(data) > MAX_JSON_DEPTH:
        raise _bad(
            "too-deep",
            f"GeoJSON bersarang lebih dari {MAX_JSON_DEPTH} tingkat",
            f"GeoJSON nested deeper than {MAX_JSON_DEPTH} levels",
        )
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _bad("bad-geojson", f"GeoJSON tidak terbaca: {exc}", f"unreadable GeoJSON: {exc}") from None
    geometries: list[dict[str, Any]] = []
    vertices = parts = 0

    def collect(obj: Any) -> None:
        nonlocal vertices, parts
        if not isinstance(obj, dict):
            raise _bad("bad-geojson", "GeoJSON harus berupa objek", "GeoJSON must be an object")
        kind = obj.get("type")
        if kind == "FeatureCollection":
            for f in obj.get("features") or []:
                collect(f)
        elif kind == "Feature":
            if obj.get("geometry") is not None:
                collect(obj["geometry"])
        elif kind == "GeometryCollection":
            for g in obj.get("geometries") or []:
                collect(g)
        elif isinstance(kind, str):
            geometries.append(obj)
            if len(geometries) > MAX_SHAPES:
                raise _bad("too-many-shapes", f"Lebih dari {MAX_SHAPES} bentuk", f"more than {MAX_SHAPES} shapes")
            depth = _COORD_DEPTH.get(kind)
            if depth:
                v, rings = _positions(obj.get("coordinates"), depth)
                vertices, parts = vertices + max(v, 0), parts + rings
                if vertices > MAX_VERTICES:
                    raise _too_many_vertices()
                if parts > MAX_PARTS:
                    raise _too_many_parts()
        else:
            raise _bad("bad-geojson", "GeoJSON tanpa 'type'", "GeoJSON object without a 'type'")

    collect(doc)
    out = []
    for g in geometries:
        try:
            out.append(shape(g))
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, shapely.errors.GEOSException) as exc:
            raise _bad("bad-geojson", f"Geometri GeoJSON rusak: {exc}", f"malformed GeoJSON geometry: {exc}") from None
    return out


def _shapefile(data: bytes) -> list[BaseGeometry]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except zipfile.BadZipFile:
        raise _bad("bad-zip", "Berkas zip rusak", "broken zip file") from None
    if sum(i.file_size for i in infos) > MAX_UNZIPPED_BYTES:
        raise _bad("upload-too-large", "Isi zip terlalu besar", "zip content too large")
    names = {i.filename.lower(): i.filename for i in infos if not i.is_dir()}
    shp = sorted(n for n in names if n.endswith(".shp") and not n.startswith("__macosx"))
    if not shp:
        raise _bad("no-shapefile", "Zip tidak berisi berkas .shp", "the zip holds no .shp file")
    # The declared (uncompressed) sizes bound what zipfile will ever inflate: refuse a .shp too big to hold a
    # drawable area before reading a byte of it.
    if sum(archive.getinfo(names[n]).file_size for n in shp) > MAX_SHP_BYTES:
        raise _too_many_vertices()
    out: list[BaseGeometry] = []
    vertices = parts = 0
    for shp_name in shp:
        stem = shp_name[:-4]
        if stem + ".shx" not in names:
            raise _bad("no-shapefile", f"{shp_name}: berkas .shx tidak ada", f"{shp_name}: the .shx file is missing")
        to_lonlat = (
            _transformer(archive.read(names[stem + ".prj"]).decode("utf-8", "replace"))
            if (stem + ".prj" in names)
            else None
        )
        try:
            reader = shapefile.Reader(
                shp=io.BytesIO(archive.read(names[shp_name])),
                shx=io.BytesIO(archive.read(names[stem + ".shx"])),
                dbf=io.BytesIO(archive.read(names[stem + ".dbf"])) if stem + ".dbf" in names else None,
            )
            shapes: list[shapefile.Shape] = []
            for s in reader.iterShapes():
                if s is None or s.shapeType == shapefile.NULL:  # None only for shapes outside a bbox (none given)
                    continue
                vertices, parts = vertices + len(s.points), parts + len(getattr(s, "parts", ()) or (1,))
                if vertices > MAX_VERTICES:
                    raise _too_many_vertices()
                if parts > MAX_PARTS:
                    raise _too_many_parts()
                if len(shapes) >= MAX_SHAPES:
                    raise _bad("too-many-shapes", f"Lebih dari {MAX_SHAPES} bentuk", f"more than {MAX_SHAPES} shapes")
                shapes.append(s)
        except GeoError:
            raise
        except (shapefile.ShapefileException, ValueError, OSError, IndexError) as exc:
            raise _bad("bad-shapefile", f"Shapefile rusak: {exc}", f"unreadable Shapefile: {exc}") from None
        for s in shapes:
            try:
                geom = shape(dict(s.__geo_interface__))
            except (ValueError, TypeError, IndexError, shapely.errors.GEOSException) as exc:
                raise _bad("bad-shapefile", f"Bentuk rusak: {exc}", f"malformed shape: {exc}") from None
            out.append(shapely.transform(geom, to_lonlat, interleaved=False) if to_lonlat else geom)
    return out


def _transformer(prj_wkt: str) -> Any:
    try:
        crs = CRS.from_wkt(prj_wkt)
    except CRSError:
        raise _bad("bad-projection", "Berkas .prj tidak terbaca", "unreadable .prj projection") from None
    if crs.equals(CRS.from_epsg(4326), ignore_axis_order=True):
        return None
    return Transformer.from_crs(crs, CRS.from_epsg(4326), always_xy=True).transform


def _kml_ring(el: Any) -> list[tuple[float, float]]:
    coords = el.find(f".//{KML_NS}coordinates")
    if coords is None or not (coords.text or "").strip():
        raise _bad("bad-kml", "Poligon KML tanpa koordinat", "KML polygon without coordinates")
    ring = []
    for token in coords.text.split():
        values = token.split(",")
        try:
            ring.append((float(values[0]), float(values[1])))
        except (ValueError, IndexError):
            bad = token[:40]
            raise _bad("bad-kml", f"Koordinat KML rusak: {bad}", f"malformed KML coordinate: {bad}") from None
    return ring


def _kml(data: bytes) -> list[BaseGeometry]:
    try:
        root = ElementTree.fromstring(data)
    except (ElementTree.ParseError, DefusedXmlException) as exc:
        raise _bad("bad-kml", f"KML tidak terbaca: {exc}", f"unreadable KML: {exc}") from None
    if not root.tag.startswith(KML_NS) and root.tag != "kml":
        raise _bad("bad-kml", "Bukan dokumen KML 2.2", "not a KML 2.2 document")
    rings = list(root.iter(f"{KML_NS}coordinates"))
    if len(rings) > MAX_PARTS:
        raise _too_many_parts()
    if sum(len((c.text or "").split()) for c in rings) > MAX_VERTICES:
        raise _too_many_vertices()
    out: list[BaseGeometry] = []
    for poly in root.iter(f"{KML_NS}Polygon"):
        outer = poly.find(f"{KML_NS}outerBoundaryIs")
        if outer is None:
            raise _bad("bad-kml", "Poligon KML tanpa outerBoundaryIs", "KML polygon without outerBoundaryIs")
        holes = [_kml_ring(h) for h in poly.findall(f"{KML_NS}innerBoundaryIs")]
        try:
            out.append(Polygon(_kml_ring(outer), holes))
        except (ValueError, shapely.errors.GEOSException) as exc:
            raise _bad("bad-kml", f"Poligon KML rusak: {exc}", f"malformed KML polygon: {exc}") from None
    for other in ("Point", "LineString"):
        if not out and next(root.iter(f"{KML_NS}{other}"), None) is not None:
            raise _bad(
                "not-polygonal",
                f"KML berisi {other}, bukan poligon",
                f"the KML holds a {other}, not a polygon",
            )
    return out

"""BMKG intake: nowcast CAP, nowcast RSS and earthquake JSON become draft alerts for a human to approve.

BMKG open data must be credited: every draft names BMKG as its source and links the original item.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from rapidfuzz import fuzz, process
from sqlalchemy import select
from sqlalchemy.orm import Session

from broadcast.alerts import capmap, hazards, service
from broadcast.alerts.models import Alert, AlertArea, AlertInfo
from broadcast.authority import Actor
from broadcast.cap import codec, validation
from broadcast.cap.validation import Fetch
from broadcast.errors import BroadcastError
from geo import boundaries, gazetteer
from geo.areas import area_from_cap_polygon, area_from_circle
from geo.errors import GeoError
from templates import i18n

log = logging.getLogger(__name__)

BMKG_SENDER = "info@bmkg.go.id"
SHAKEMAP_BASE = "https://data.bmkg.go.id/DataMKG/TEWS/"
CHANNELS = ("sms", "social", "web")
ATTRIBUTION = "Sumber / source: BMKG (Badan Meteorologi, Klimatologi, dan Geofisika)"


@dataclass
class IntakeResult:
    created: list[int] = field(default_factory=list)
    merged: list[int] = field(default_factory=list)  # an existing draft gained a language
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (item, reason)


# ---------------------------------------------------------------- earthquakes


@dataclass(frozen=True)
class Quake:
    time: datetime
    lat: float
    lon: float
    magnitude: float
    depth: str
    region: str
    potential: str
    felt: str
    shakemap: str

    @property
    def key(self) -> str:
        return f"bmkg-gempa:{self.time.isoformat()}:{self.lat:.2f},{self.lon:.2f}:{self.magnitude:.1f}"

    @property
    def tsunami(self) -> bool:
        text = self.potential.lower()
        return "tsunami" in text and "tidak berpotensi" not in text


def parse_quakes(data: bytes) -> list[Quake]:
    """Earthquakes in a BMKG autogempa / gempaterkini / gempadirasakan JSON document.

    Raises: ValueError with the reason when it is not that format.
    """
    try:
        doc = json.loads(data)
        items = doc["Infogempa"]["gempa"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError("bukan JSON gempa BMKG / not a BMKG earthquake JSON (Infogempa.gempa)") from exc
    if isinstance(items, dict):
        items = [items]
    quakes = []
    for n, item in enumerate(items, start=1):
        try:
            lat_s, lon_s = item["Coordinates"].split(",")
            quakes.append(
                Quake(
                    time=datetime.fromisoformat(item["DateTime"]),
                    lat=float(lat_s),
                    lon=float(lon_s),
                    magnitude=float(item["Magnitude"]),
                    depth=str(item.get("Kedalaman", "")),
                    region=str(item.get("Wilayah", "")),
                    potential=str(item.get("Potensi", "")),
                    felt=str(item.get("Dirasakan", "")),
                    shakemap=str(item.get("Shakemap", "")),
                )
            )
        except (KeyError, ValueError, AttributeError) as exc:
            raise ValueError(f"gempa ke-{n} tidak lengkap / earthquake {n} is incomplete: {exc}") from exc
    return quakes


def felt_radius_km(magnitude: float) -> float:
    """A rough radius in which a quake is felt strongly enough to warn (25-300 km)."""
    return max(25.0, min(300.0, 10 ** (0.43 * magnitude - 0.9)))


def quake_severity(quake: Quake) -> str:
    """CAP severity from magnitude and tsunami potential."""
    if quake.tsunami or quake.magnitude >= 7:
        return "Extreme"
    if quake.magnitude >= 6:
        return "Severe"
    if quake.magnitude >= 5:
        return "Moderate"
    return "Minor"


def _quake_infos(quake: Quake) -> list[AlertInfo]:
    zone = i18n.zone_of(boundaries.codes_at(quake.lon, quake.lat, "provinsi"))  # at sea: WIB, as BMKG writes
    when = {lang: i18n.format_time(quake.time, zone, lang) for lang in ("id", "en")}
    if quake.tsunami:
        key = "tsunami"
        fields = {
            "wilayah": _region_name(quake.region),
            "magnitudo": f"{quake.magnitude:.1f}",
            "lokasi_gempa": quake.region,
        }
    else:
        key = "gempa_bumi"
        fields = {
            "magnitudo": f"{quake.magnitude:.1f}",
            "lokasi": quake.region,
            "kedalaman": quake.depth,
            "dirasakan": quake.felt,
            "potensi_tsunami": quake.potential,
        }
    infos = []
    localized = {} if quake.tsunami else {"waktu": when}
    for position, info_in in enumerate(hazards.render(key, fields, localized)):
        data = info_in.model_dump(exclude={"parameters"})
        data["severity"] = quake_severity(quake)
        data["web"] = SHAKEMAP_BASE + quake.shakemap if quake.shakemap else None
        data["onset"] = quake.time
        data["sender_name"] = "BMKG"
        data["expires"] = quake.time + timedelta(hours=6)
        infos.append(
            AlertInfo(
                position=position,
                **data,
                parameters=[
                    {"valueName": "BMKG_MAGNITUDE", "value": f"{quake.magnitude:.1f}"},
                    {"valueName": "BMKG_DEPTH", "value": quake.depth},
                    {"valueName": "BMKG_COORDINATES", "value": f"{quake.lat},{quake.lon}"},
                ],
            )
        )
    return infos


def _region_name(region: str) -> str:
    return region.replace("Pusat gempa berada di ", "").strip() or "wilayah pesisir terdekat"


def quake_area(quake: Quake) -> AlertArea:
    """A circle around the epicentre (felt radius) and the kabupaten/kota it touches."""
    radius = round(felt_radius_km(quake.magnitude), 1)
    area = area_from_circle(quake.lon, quake.lat, radius)
    codes = boundaries.intersecting_codes(area.geometry, "kabupaten_kota")
    desc = f"Radius {radius:g} km dari pusat gempa / from the epicentre ({quake.region})"
    return AlertArea(
        area_desc=desc,
        geocodes=codes,
        circles=[{"lat": quake.lat, "lon": quake.lon, "radius_km": radius}],
        polygons=[],
        other_geocodes=[],
    )


# ---------------------------------------------------------------- nowcast RSS


@dataclass(frozen=True)
class NowcastItem:
    guid: str
    title: str
    description: str
    link: str
    published: datetime | None


def parse_nowcast_rss(data: bytes) -> list[NowcastItem]:
    """Items of the BMKG nowcast RSS index.

    Raises: CapError (not XML / not RSS).
    """
    root = codec.parse_document(data)
    if codec.local_name(root) != "rss":
        raise codec.CapError(["bukan RSS / not an RSS document"])
    items = []
    for item in root.iter("item"):
        pub = item.findtext("pubDate")
        items.append(
            NowcastItem(
                guid=(item.findtext("guid") or item.findtext("link") or "").strip(),
                title=" ".join((item.findtext("title") or "").split()),
                description=(item.findtext("description") or "").strip(),
                link=(item.findtext("link") or "").strip(),
                published=parsedate_to_datetime(pub) if pub else None,
            )
        )
    return items


_PLACES = re.compile(r"khususnya di (?P<places>.+?)\.\s", re.S)
_PROVINCE = re.compile(r" di (?P<prov>[^,]+)$")
_UNTIL = re.compile(r"hingga (?P<until>\d{1,2} \w+ \d{4}, \d{2}:\d{2}) (?P<tz>WIB|WITA|WIT)")
_TZ = {"WIB": 7, "WITA": 8, "WIT": 9}
_MONTHS = {
    m: i
    for i, m in enumerate(
        [
            "january",
            "february",
            "march",
            "april",
            "may",
            "june",
            "july",
            "august",
            "september",
            "october",
            "november",
            "december",
        ],
        start=1,
    )
} | {
    m: i
    for i, m in enumerate(
        [
            "januari",
            "februari",
            "maret",
            "april",
            "mei",
            "juni",
            "juli",
            "agustus",
            "september",
            "oktober",
            "november",
            "desember",
        ],
        start=1,
    )
}


def match_place(name: str, level: str, *, within: str | None = None, cutoff: float = 88.0) -> str | None:
    """The Kemendagri code whose name best matches `name` at `level` (inside `within`), or None."""
    candidates = {
        p.kode: _plain(p.nama)
        for p in gazetteer.places_at(level)
        if within is None or gazetteer.contains(within, p.kode)
    }
    if not candidates:
        return None
    best = process.extractOne(_plain(name), candidates, scorer=fuzz.WRatio, score_cutoff=cutoff)
    return best[2] if best else None


def _plain(name: str) -> str:
    name = name.lower().strip()
    for prefix in ("kabupaten ", "kab. ", "kota ", "kecamatan ", "kec. ", "provinsi "):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    return " ".join(name.split())


def nowcast_codes(item: NowcastItem) -> tuple[str | None, list[str]]:
    """(provinsi code, kecamatan codes) named in a nowcast item's title and description."""
    prov_match = _PROVINCE.search(item.title)
    province = match_place(prov_match.group("prov"), "provinsi", cutoff=85) if prov_match else None
    places = _PLACES.search(item.description + " ")
    codes: list[str] = []
    if places and province:
        for name in dict.fromkeys(p.strip() for p in places.group("places").split(",")):
            code = match_place(name, "kecamatan", within=province)
            if code and code not in codes:
                codes.append(code)
    return province, codes


def nowcast_until(item: NowcastItem) -> datetime | None:
    """The end time a nowcast item states ("hingga 17 February 2026, 02:00 WIB")."""
    m = _UNTIL.search(item.description)
    if not m:
        return None
    day, month, rest = m.group("until").split(" ", 2)
    year, clock = rest.split(", ")
    hour, minute = clock.split(":")
    month_no = _MONTHS.get(month.lower())
    if month_no is None:
        return None
    tz = timezone(timedelta(hours=_TZ[m.group("tz")]))
    return datetime(int(year), month_no, int(day), int(hour), int(minute), tzinfo=tz)


# ---------------------------------------------------------------- drafts


def _exists(session: Session, origin_ref: str) -> Alert | None:
    return session.scalar(select(Alert).where(Alert.origin_ref == origin_ref))


def _new_draft(
    session: Session,
    *,
    author: Actor,
    origin_ref: str,
    infos: list[AlertInfo],
    areas: list[AlertArea],
    expires: datetime | None,
    source_url: str | None,
) -> Alert:
    # create_imported checks that the importing actor (the system actor, limited by configuration) covers the area.
    columns: dict[str, Any] = {
        "identifier": service.new_identifier(),
        "sender": BMKG_SENDER,
        "status": "Actual",
        "msg_type": "Alert",
        "scope": "Public",
        "expires": expires,
        "note": f"{ATTRIBUTION}. {source_url or ''}".strip(),
        "codes": [],
    }
    draft = service.ImportedDraft(columns, infos, areas, "bmkg", origin_ref, CHANNELS, {"source": source_url})
    return service.create_imported(session, draft=draft, author=author)


def import_quakes(session: Session, data: bytes, *, author: Actor, name: str = "gempa") -> IntakeResult:
    """Each earthquake not seen before becomes a draft (gempa bumi, or tsunami when BMKG says so)."""
    result = IntakeResult()
    try:
        quakes = parse_quakes(data)
    except ValueError as exc:
        result.skipped.append((name, str(exc)))
        return result
    for quake in quakes:
        if _exists(session, quake.key):
            result.skipped.append((quake.key, "sudah diimpor / already imported"))
            continue
        try:
            area = quake_area(quake)
            infos = _quake_infos(quake)
        except (GeoError, BroadcastError) as exc:
            result.skipped.append((quake.key, str(exc)))
            continue
        alert = _new_draft(
            session,
            author=author,
            origin_ref=quake.key,
            infos=infos,
            areas=[area],
            expires=quake.time + timedelta(hours=6),
            source_url=infos[0].web,
        )
        result.created.append(alert.id)
    return result


def _cap_areas(msg: codec.CapMessage) -> tuple[list[str], list[str]]:
    """Kecamatan codes the message's polygons touch, and warnings for polygons that could not be read."""
    codes: list[str] = []
    warnings = []
    for info in msg.infos:
        for area in info.areas:
            for poly in area.polygons:
                try:
                    geometry = area_from_cap_polygon(poly).geometry
                except GeoError as exc:
                    warnings.append(f"{area.area_desc}: {exc}")
                    continue
                codes += [c for c in boundaries.intersecting_codes(geometry, "kecamatan") if c not in codes]
    return codes, warnings


def import_nowcast_cap(session: Session, data: bytes, *, author: Actor, name: str = "nowcast") -> IntakeResult:
    """A BMKG nowcast CAP becomes a draft; the same warning in another language joins that draft."""
    result = IntakeResult()
    try:
        msg = validation.parse_cap(data)
    except codec.CapError as exc:
        result.skipped.append((name, "; ".join(exc.reasons[:3])))
        return result
    ref = f"bmkg-cap:{msg.identifier}"
    existing = _exists(session, ref)
    if existing is not None:
        _, infos, _ = _parts(msg)
        if service.add_imported_languages(session, alert=existing, infos=infos, author=author, origin_ref=ref):
            result.merged.append(existing.id)
        else:
            result.skipped.append((name, "sudah diimpor / already imported"))
        return result
    _, infos, areas = _parts(msg)
    if not infos:
        result.skipped.append((name, "tidak ada blok <info> / no <info> block: nothing to broadcast"))
        return result
    codes, warnings = _cap_areas(msg)
    for area in areas:
        area.geocodes = codes
    for info in infos:
        info.hazard = "cuaca_ekstrem"
    alert = _new_draft(
        session,
        author=author,
        origin_ref=ref,
        infos=infos,
        areas=areas,
        expires=min((i.expires for i in infos if i.expires), default=None),
        source_url=next((i.web for i in infos if i.web), None),
    )
    result.created.append(alert.id)
    result.skipped += [(name, w) for w in warnings]
    return result


def _parts(msg: codec.CapMessage) -> tuple[dict[str, object], list[AlertInfo], list[AlertArea]]:
    columns, infos, areas = capmap.message_to_parts(msg)
    for info in infos:
        info.language = {"id": "id-ID", "en": "en-US"}.get(info.language, info.language)
    return columns, infos, areas


def import_nowcast_rss(
    session: Session, data: bytes, *, author: Actor, fetch: Fetch | None = None, name: str = "rss"
) -> IntakeResult:
    """Each nowcast item becomes a draft: from its linked CAP when it can be fetched, else from the item."""
    result = IntakeResult()
    try:
        items = parse_nowcast_rss(data)
    except codec.CapError as exc:
        result.skipped.append((name, "; ".join(exc.reasons[:3])))
        return result
    for item in items:
        if fetch is not None and item.link:
            try:
                sub = import_nowcast_cap(session, fetch(item.link), author=author, name=item.link)
            except OSError as exc:
                log.info("nowcast CAP %s not fetched: %s", item.link, exc)
            else:
                result.created += sub.created
                result.merged += sub.merged
                result.skipped += sub.skipped
                continue
        ref = f"bmkg-cap:{item.guid}"
        if _exists(session, ref):
            result.skipped.append((item.guid, "sudah diimpor / already imported"))
            continue
        province, codes = nowcast_codes(item)
        if not province and not codes:
            result.skipped.append((item.guid, "wilayah tidak dikenali / area not recognised: " + item.title))
            continue
        until = nowcast_until(item)
        fields = {"wilayah": item.title.split(" di ")[-1], "fenomena": item.title.split(" di ")[0].lower()}
        infos = []
        for position, info_in in enumerate(hazards.render("cuaca_ekstrem", fields)):
            data_i = info_in.model_dump(exclude={"parameters"})
            if position == 0:
                data_i["headline"] = item.title
                data_i["description"] = " ".join(item.description.split())
            data_i.update(web=item.link, sender_name="BMKG", expires=until, effective=item.published)
            infos.append(AlertInfo(position=position, **data_i, parameters=[]))
        desc = item.title.split(" di ")[-1]
        area = AlertArea(area_desc=desc, geocodes=codes or [province], polygons=[], circles=[], other_geocodes=[])
        alert = _new_draft(
            session, author=author, origin_ref=ref, infos=infos, areas=[area], expires=until, source_url=item.link
        )
        result.created.append(alert.id)
    return result


def detect_and_import(
    session: Session, data: bytes, *, author: Actor, fetch: Fetch | None = None, name: str = "document"
) -> IntakeResult:
    """Import a BMKG document of any supported kind (earthquake JSON, nowcast CAP, nowcast RSS)."""
    head = data.lstrip()[:1]
    if head in (b"{", b"["):
        return import_quakes(session, data, author=author, name=name)
    try:
        root = codec.parse_document(data)
    except codec.CapError as exc:
        return IntakeResult(skipped=[(name, "; ".join(exc.reasons[:3]))])
    if codec.local_name(root) == "rss":
        return import_nowcast_rss(session, data, author=author, fetch=fetch, name=name)
    return import_nowcast_cap(session, data, author=author, name=name)


def source_files(paths: Iterable[Path]) -> list[Path]:
    """The files to read: each file as given, and the .xml/.json files inside each folder."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out += sorted(p for p in path.iterdir() if p.suffix.lower() in (".xml", ".json") and p.is_file())
        else:
            out.append(path)
    return out

"""What the operator console needs around an alert: child areas to click on, place search, previews of every
channel from the channels' own renderers (for a stored alert or an unsaved draft), and the diff of a follow-up.

Services flush nothing here: previews build a transient alert that is never added to the session.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import shapely
from shapely.geometry import mapping
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from broadcast.alerts import audience, rules, service, target_area
from broadcast.alerts.models import Alert, AlertState
from broadcast.alerts.schemas import AlertCreate
from broadcast.cap import codec
from broadcast.errors import Invalid, NotFound
from broadcast.trust import codes
from broadcast.users.models import User
from channels.base import AlertData, Renderer, status_mark
from geo import boundaries, gazetteer, placenames
from templates import page_env
from templates.pagectx import page_helpers

if TYPE_CHECKING:
    from broadcast.dispatch.wiring import CapUsage

CHILD_LEVEL = {None: "provinsi", "provinsi": "kabupaten_kota", "kabupaten_kota": "kecamatan", "kecamatan": "desa"}
SIMPLIFY_DEG = {"provinsi": 0.02, "kabupaten_kota": 0.002, "kecamatan": 0.0005, "desa": 0.0001}
GRID_DEG = 0.00001  # ~1 m: enough for a map to click on, and half the bytes
LEVEL_NAMES = {
    "provinsi": ("Provinsi", "Province"),
    "kabupaten_kota": ("Kabupaten/Kota", "Regency/City"),
    "kecamatan": ("Kecamatan", "District"),
    "desa": ("Desa/Kelurahan", "Village"),
    "desa_kelurahan": ("Desa/Kelurahan", "Village"),
}


class UnknownAreaCode(NotFound):
    code = "unknown-area-code"


class NoLowerLevel(Invalid):
    code = "no-lower-level"


def _check_code(code: str) -> gazetteer.Place:
    if not gazetteer.is_well_formed(code):
        raise Invalid(f"Kode wilayah '{code[:20]}' salah bentuk / malformed area code", code="malformed-area-code")
    place = gazetteer.find_place(code)
    if place is None:
        raise UnknownAreaCode(f"Kode wilayah '{code}' tidak dikenal / unknown area code")
    return place


def _for_display(geom: Any, level: str) -> Any:
    """A lighter outline to click on: simplified, on a ~1 m grid, and (for whole provinsi) without the islets
    smaller than a few km², which are most of the bytes; targeting itself always uses the full boundaries."""
    tolerance = SIMPLIFY_DEG[level]
    if level == "provinsi":
        parts = [p for p in getattr(geom, "geoms", [geom]) if p.area >= 100 * tolerance**2]
        geom = shapely.MultiPolygon(parts) if parts else geom
    return shapely.set_precision(geom.simplify(tolerance), GRID_DEG)


@lru_cache(maxsize=256)
def _children_cached(code: str | None) -> dict[str, Any]:
    parent_level = None if code is None else gazetteer.level_of(code)
    level = CHILD_LEVEL.get(parent_level)
    if level is None:
        raise NoLowerLevel(f"Tidak ada wilayah di bawah desa {code} / nothing below a desa")
    shapes = boundaries.outlines(level) if code is None else boundaries.descendants(code, level)
    features = []
    drawn = set()
    for kode, geom in shapes:
        place = gazetteer.find_place(kode)
        point = geom.representative_point()
        drawn.add(kode)
        features.append(
            {
                "type": "Feature",
                "geometry": mapping(_for_display(geom, level)),
                "properties": {
                    "kode": kode,
                    "nama": place.nama if place else kode,
                    "level": level,
                    "has_children": level != "desa" and bool(gazetteer.children(kode)),
                    "label": [round(point.y, 6), round(point.x, 6)],
                },
            }
        )
    # Places the gazetteer knows but we hold no boundary for (desa outside the focus areas): listed, not drawn.
    missing = [] if code is None else [p for p in gazetteer.children(code) if p.kode not in drawn]
    parent = None if code is None else gazetteer.find_place(code)
    trail: list[dict[str, str]] = []
    walk = parent
    while walk is not None:
        trail.insert(0, {"kode": walk.kode, "nama": walk.nama})
        walk = gazetteer.find_place(walk.kode_induk) if walk.kode_induk else None
    return {
        "type": "FeatureCollection",
        "features": sorted(features, key=lambda f: f["properties"]["kode"]),
        "level": level,
        "level_name": LEVEL_NAMES[level],
        "parent": None if parent is None else {"kode": parent.kode, "nama": parent.nama, "level": parent.level},
        "trail": trail,
        "without_boundary": [{"kode": p.kode, "nama": p.nama} for p in sorted(missing, key=lambda p: p.kode)],
    }


def child_areas(code: str | None) -> dict[str, Any]:
    """The areas one level below `code` (provinsi when None) as a FeatureCollection (kode, nama, level,
    has_children, a label point inside each), with the breadcrumb trail above it.

    Raises: Invalid (malformed code), UnknownAreaCode, NoLowerLevel.
    """
    if code is not None:
        _check_code(code)
    return _children_cached(code)


def search_places(query: str, *, jurisdiction: str | None, limit: int = 10) -> list[dict[str, Any]]:
    """Places whose name matches `query` (typos allowed, a Kemendagri code too), inside `jurisdiction` first."""
    text = " ".join(query.split())
    if len(text) < 2:
        return []
    found: list[gazetteer.Place] = []
    match = placenames.resolve_place(text)
    if match.place is not None:
        found.append(match.place)
    found += list(match.options)
    needle = placenames.normalise(text)
    if needle and len(found) < limit:
        for level in ("kecamatan", "desa_kelurahan", "kabupaten_kota"):
            for place in gazetteer.places_at(level):
                if jurisdiction and not gazetteer.contains(jurisdiction, place.kode):
                    continue
                if needle in placenames.normalise(place.nama) and place not in found:
                    found.append(place)
                if len(found) >= limit * 3:
                    break
    inside = [p for p in found if jurisdiction is None or gazetteer.contains(jurisdiction, p.kode)]
    outside = [p for p in found if p not in inside]
    return [
        {
            "kode": p.kode,
            "nama": p.nama,
            "level": p.level,
            "label": placenames.describe(p),
            "inside_jurisdiction": p in inside,
            "has_boundary": boundaries.find_geometry(p.kode) is not None,
        }
        for p in (inside + outside)[:limit]
    ]


def draft_alert(
    session: Session, *, data: AlertCreate, author: User, sender: str, existing: Alert | None = None
) -> Alert:
    """A transient (never stored) alert built from a composer body exactly as create_alert would store it,
    for previews; its id is the next one the database would likely give, so links have their real length.
    With `existing` (a stored draft being edited) it keeps that alert's id, identifier, code, message type and
    references, so the preview is exactly what that alert will send.

    Raises: RoleNotAllowed, InvalidGeometry, OutsideJurisdiction.
    """
    rules.check_can_author(author.role)
    resolved = target_area.resolve_areas(data.areas)
    service.check_areas_jurisdiction(author, resolved)
    infos, areas = service._content_from(data, resolved)
    next_id = (session.scalar(select(func.max(Alert.id))) or 0) + 1
    alert = Alert(
        id=next_id,
        identifier=service.new_identifier(),
        sender=sender,
        status=data.status,
        msg_type="Alert",
        scope="Public",
        state=AlertState.DRAFT.value,
        channels=list(data.channels),
        author_id=author.id,
        expires=data.expires,
        note=data.note,
        origin="console",
        infos=infos,
        areas=areas,
        # A code of the real length and alphabet (the stored one is drawn on insert), so SMS segments match.
        verify_code=codes.new_code(),
    )
    if existing is not None:
        alert.id, alert.identifier, alert.verify_code = existing.id, existing.identifier, existing.verify_code
        alert.msg_type, alert.references = existing.msg_type, existing.references
        alert.references_alert_id = existing.references_alert_id
        # As update_draft does: a body without a note keeps the stored one (a correction's mark lives there).
        alert.note = data.note if data.note is not None else existing.note
    for obj in (alert, *infos, *areas):
        _apply_defaults(obj)
    return alert


def _apply_defaults(obj: Any) -> None:
    """Fill the column defaults the database would apply on insert, so a transient row reads like a stored one."""
    for column in obj.__table__.columns:
        default = column.default
        if default is None or getattr(obj, column.key, None) is not None:
            continue
        if default.is_scalar:
            setattr(obj, column.key, default.arg)
        elif default.is_callable:
            try:
                setattr(obj, column.key, default.arg(None))
            except TypeError:
                setattr(obj, column.key, default.arg())


def recipients(reach_info: dict[str, Any], channels: list[str]) -> int:
    """People a send reaches personally: matched subscribers on the alert's personal channels ("any")."""
    subs = reach_info.get("subscribers", {})
    personal = [ch for ch in channels if ch in subs and ch != "any"]
    return int(subs.get("any", 0)) if personal else 0


def channel_previews(data: AlertData, channels: list[str], renderers: Mapping[str, Renderer]) -> dict[str, Any]:
    """Each chosen channel's preview entries (language, exact text and the renderer's details) from the
    configured renderers, the very ones the fan-out sends with."""
    return {
        ch: [{"language": p.language, "text": p.text, **p.details} for p in renderers[ch].preview(data)]
        for ch in channels
        if ch in renderers
    }


def previews(
    session: Session,
    *,
    alert: Alert,
    public_base_url: str,
    renderers: Mapping[str, Renderer],
    placeholders: bool = False,
    caps: Mapping[str, CapUsage] | None = None,
) -> dict[str, Any]:
    """Every chosen channel's exact output from the configured renderers (SMS text per language with its
    encoding, segments and budget, the X thread with weighted lengths, the web headline), the CAP XML, the
    public page address, the reach and the confirm sentence an approver will read. `placeholders`: the alert is
    unsaved, so its verification code, identifier and links are stand-ins of the real length, listed under
    "placeholders" and flagged on each text that carries them. `caps`: channels' caps on distinct recipients
    (WhatsApp's messaging tier) and their use; "warnings" says when this alert would pass one.
    """
    # A transient draft has no session to find the version it updates in; an Update's preview says what changed.
    updates = alert.references_alert_id and alert.msg_type in ("Update", "Error")
    previous = session.get(Alert, alert.references_alert_id) if updates else None
    data = service.to_alert_data(alert, public_base_url=public_base_url, previous=previous)
    out_channels = channel_previews(data, list(alert.channels), renderers)
    stand_ins = _placeholders(data) if placeholders else {}
    for entries in out_channels.values():
        for entry in entries:
            entry["placeholders"] = [name for name, value in stand_ins.items() if value and value in entry["text"]]
    try:
        cap_xml = service.export_cap(alert).decode("utf-8")
        cap_error = None
    except codec.CapError as exc:  # shown to the operator; approval refuses invalid CAP anyway
        cap_xml, cap_error = None, str(exc)
    reach_info = audience.alert_reach(session, alert=alert)
    count = recipients(reach_info, list(alert.channels))
    return {
        "channels": out_channels,
        "cap_xml": cap_xml,
        "cap_error": cap_error,
        "public_url": data.public_url,
        "reach": reach_info,
        "recipients": count,
        "confirm": confirm_text(alert.status, alert.msg_type, count, correction=alert.is_correction),
        "mark": {lang: status_mark(alert.status, lang) for lang in ("id", "en")},
        "placeholders": stand_ins,
        "warnings": cap_warnings(reach_info, caps or {}),
    }


def cap_warnings(reach_info: dict[str, Any], caps: Mapping[str, CapUsage]) -> list[str]:
    """A warning (Indonesian / English) for each channel whose matched subscribers, added to the people its cap
    already counts, pass the cap: those beyond it get nothing on that channel."""
    subs = reach_info.get("subscribers", {})
    out = []
    for channel, usage in caps.items():
        wanted = int(subs.get(channel, 0))
        used = usage.used
        hours = f"{usage.window_s / 3600:g}"
        if used is None:
            out.append(
                f"Batas {channel} ({format_count(usage.limit)} orang per {hours} jam) tidak bisa dibaca; anggap "
                f"sudah penuh. / The {channel} limit ({usage.limit:,} people per {hours} h) cannot be read; assume "
                "it is reached."
            )
        elif wanted and used + wanted > usage.limit:
            room = max(0, usage.limit - used)
            out.append(
                f"Peringatan: {format_count(wanted)} pelanggan {channel}, tetapi batas tingkat pesan tinggal "
                f"{format_count(room)} orang (dari {format_count(usage.limit)} per {hours} jam); sisanya tidak "
                f"menerima lewat {channel}. / Warning: {wanted:,} {channel} subscribers, but the messaging tier has "
                f"room for {room:,} more people (of {usage.limit:,} per {hours} h); the rest get nothing on {channel}."
            )
    return out


def _placeholders(data: AlertData) -> dict[str, str]:
    """Values an unsaved draft only has as stand-ins: they are assigned when the alert is saved."""
    return {
        "verify_code": data.verify_code or "",
        "identifier": data.identifier,
        "public_url": data.public_url,
        "short_url": data.short_url or "",
    }


def format_count(n: int, *, sep: str = ".") -> str:
    """41230 → "41.230" (Indonesian) or "41,230" (English)."""
    return f"{n:,}".replace(",", sep)


def confirm_text(status: str, msg_type: str, count: int, *, correction: bool = False) -> dict[str, str]:
    """The sentence the approver confirms, naming the status and the number of recipients."""
    kind_id, kind_en = {
        "Actual": ("PERINGATAN NYATA", "a REAL WARNING"),
        "Exercise": ("LATIHAN", "an EXERCISE"),
        "Test": ("UJI COBA (TEST)", "a TEST"),
    }.get(status, (status.upper(), status.upper()))
    if msg_type == "Cancel":
        kind_id, kind_en = f"PEMBATALAN {kind_id}", f"a CANCELLATION of {kind_en}"
    elif msg_type == "Update" and correction:
        kind_id, kind_en = f"KOREKSI {kind_id}", f"a CORRECTION of {kind_en}"
    elif msg_type == "Update":
        kind_id, kind_en = f"PEMBARUAN {kind_id}", f"an UPDATE of {kind_en}"
    return {
        "id": f"Kirim {kind_id} ke {format_count(count)} penerima?",
        "en": f"Send {kind_en} to {format_count(count, sep=',')} recipients?",
    }


def _lines(alert: Alert) -> list[str]:
    out = [
        f"status: {alert.status}",
        f"msgType: {alert.msg_type}",
        f"channels: {', '.join(alert.channels)}",
        f"expires: {alert.expires.isoformat() if alert.expires else '-'}",
    ]
    for info in alert.infos:
        lang = info.language
        for name in ("event", "urgency", "severity", "certainty", "headline", "description", "instruction"):
            out.append(f"[{lang}] {name}: {getattr(info, name)}")
    for area in alert.areas:
        out.append(f"area: {area.area_desc}")
        out.append(f"geocodes: {', '.join(area.geocodes)}")
        if area.target_geometry:
            out.append(f"drawn: {area.target_geometry.get('type')} (bbox {_bbox(area.target_geometry)})")
    return out


def _bbox(geometry: dict[str, Any]) -> str:
    from shapely.geometry import shape

    return ", ".join(f"{v:.4f}" for v in shape(geometry).bounds)


def version_diff(original: Alert, alert: Alert) -> list[tuple[str, str]]:
    """Line diff of the fields an approver checks, original → this version: (kind, line) with kind one of
    "add", "del", "same", "hunk"."""
    out = []
    for line in difflib.unified_diff(_lines(original), _lines(alert), lineterm="", n=2):
        if line.startswith(("---", "+++")):
            continue
        kind = {"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "same")
        out.append((kind, line))
    return out


def public_page_html(alert: Alert, *, lang: str = "id") -> str:
    """The public page of `alert` from the same template /peringatan/<identifier> uses, before it is published."""
    return (
        page_env()
        .get_template("alert.html")
        .render(
            **page_helpers(lang),
            path=f"/peringatan/{alert.identifier}",
            user=None,
            csrf="",
            lang=lang,
            alert=alert,
            infos=sorted(alert.infos, key=lambda i: not i.language.startswith(lang)),
            followers=[],
            original=None,
        )
    )

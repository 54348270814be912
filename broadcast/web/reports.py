"""Public report form (/lapor) and the operations-centre dashboard (/pusdalops) for analysts."""

from __future__ import annotations

import io
import json
import logging
import math
import secrets
import uuid
import warnings
from datetime import datetime
from pathlib import Path as FilePath
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Path, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, Response
from markupsafe import escape
from starlette.concurrency import run_in_threadpool

from broadcast.api.abuse import FormRejected, check_rate, form_token
from broadcast.api.abuse import check_form_token as check_token
from broadcast.api.deps import SessionDep, SettingsDep, StaffDep, find_current_user
from broadcast.api.pages import render_page, sign_in_redirect
from broadcast.api.security import client_ip
from broadcast.errors import BroadcastError, Invalid, TooManyRequests
from broadcast.reports import exports, intake, petabencana, rules
from broadcast.reports.tasks import kick_enrichment
from broadcast.settings import Settings
from broadcast.subscribers import service as subscribers
from broadcast.web import maps
from broadcast.web.public import select_alerts
from geo import gazetteer
from templates import i18n

log = logging.getLogger(__name__)
router = APIRouter(tags=["reports pages"])

PHOTO_TYPES = {b"\xff\xd8\xff": ".jpg", b"\x89PNG\r\n\x1a\n": ".png"}
PHOTO_NAME_LEN = 32
HAZARD_LABELS = {
    "banjir": "Banjir / Flood",
    "genangan": "Genangan / Standing water",
    "banjir_bandang": "Banjir bandang / Flash flood",
    "longsor": "Longsor / Landslide",
    "gempa": "Gempa / Earthquake",
    "tsunami": "Tsunami",
    "kebakaran": "Kebakaran / Fire",
    "erupsi": "Erupsi / Eruption",
    "angin": "Angin kencang / Strong wind",
    "kekeringan": "Kekeringan / Drought",
}


def _form_token(settings: Settings) -> str:
    return form_token(settings, form="lapor")


def check_form_token(settings: Settings, token: str, *, now: float | None = None) -> None:
    """The report form was rendered by us at least the minimum fill time and less than a day ago, and this
    token has not been sent before (broadcast.api.abuse.check_form_token).

    Raises: FormRejected.
    """
    check_token(settings, token, form="lapor", min_age_s=settings.report_form_min_seconds, now=now)


async def _save_photo(settings: Settings, photo: UploadFile) -> str:
    data = await photo.read(settings.report_photo_max_bytes + 1)
    if len(data) > settings.report_photo_max_bytes:
        raise FormRejected(
            f"Foto melebihi {settings.report_photo_max_bytes // 1_000_000} MB / photo larger than "
            f"{settings.report_photo_max_bytes // 1_000_000} MB"
        )
    ext = next((e for magic, e in PHOTO_TYPES.items() if data.startswith(magic)), None)
    if ext is None and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        ext = ".webp"
    if ext is None:
        raise FormRejected("Foto harus JPEG, PNG atau WebP / photo must be JPEG, PNG or WebP")
    clean, clean_ext = await run_in_threadpool(reencode_photo, data)
    folder = (settings.data_dir / "uploads").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    name = secrets.token_hex(PHOTO_NAME_LEN // 2) + clean_ext
    (folder / name).write_bytes(clean)
    return f"/pusdalops/foto/{name}"


PHOTO_MAX_PIXELS = 40_000_000


def reencode_photo(data: bytes) -> tuple[bytes, str]:
    """The photo decoded and encoded afresh in its own format (JPEG, PNG or WebP) with no metadata at all: no
    EXIF (GPS position, camera serial, time), XMP, ICC profile or text chunks. Orientation is applied first.

    Raises: FormRejected (not a decodable JPEG/PNG/WebP, or more than PHOTO_MAX_PIXELS pixels).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=("JPEG", "PNG", "WEBP")) as img:
                if img.width * img.height > PHOTO_MAX_PIXELS:
                    raise FormRejected("Foto terlalu besar (piksel) / photo has too many pixels")
                kind = img.format or "JPEG"
                img.load()
                upright = ImageOps.exif_transpose(img)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError, Warning) as exc:
        raise FormRejected("Foto rusak atau tidak dikenal / photo is damaged or not an image") from exc
    has_alpha = upright.mode in ("RGBA", "LA", "PA") or (upright.mode == "P" and "transparency" in upright.info)
    if kind == "JPEG":
        has_alpha = False
    # A new image from the pixels only: nothing of the original's info dict (exif, icc_profile, xmp, text) travels.
    pixels = upright.convert("RGBA" if has_alpha else "RGB")
    fresh = Image.new(pixels.mode, pixels.size)
    fresh.paste(pixels)
    out = io.BytesIO()
    if kind == "PNG":
        fresh.save(out, format="PNG", optimize=True)
        return out.getvalue(), ".png"
    if kind == "WEBP":
        fresh.save(out, format="WEBP", quality=85)
        return out.getvalue(), ".webp"
    fresh.save(out, format="JPEG", quality=85)
    return out.getvalue(), ".jpg"


def _lapor_page(request: Request, settings: Settings, *, status_code: int = 200, **context: object) -> HTMLResponse:
    context.setdefault("error", None)
    context.setdefault("reference", None)
    context.setdefault("values", {})
    return render_page(
        request,
        "lapor.html",
        status_code=status_code,
        token=_form_token(settings),
        max_mb=settings.report_photo_max_bytes // 1_000_000,
        **context,
    )


@router.get("/lapor", response_class=HTMLResponse)
def report_form(request: Request, settings: SettingsDep, lang: str = "id") -> HTMLResponse:
    """The public report form: what happened, optional phone, photo and a pin on the map."""
    return _lapor_page(request, settings, lang="en" if lang == "en" else "id")


@router.post(
    "/lapor",
    response_class=HTMLResponse,
    responses={
        422: {
            "description": "The form again, saying what to fix (problem JSON when the request is not a form)",
            "content": {"text/html": {}, "application/problem+json": {}},
        },
        429: {"description": "Too many reports from this address or number", "content": {"text/html": {}}},
    },
)
async def report_submit(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    text: Annotated[str, Form(max_length=4000)] = "",
    phone: Annotated[str, Form(max_length=32)] = "",
    lat: Annotated[str, Form(max_length=32)] = "",
    lon: Annotated[str, Form(max_length=32)] = "",
    token: Annotated[str, Form(max_length=80)] = "",
    website: Annotated[str, Form(max_length=200)] = "",  # honeypot: people never see it
    photo: Annotated[UploadFile | None, File()] = None,
) -> HTMLResponse:
    """Store a citizen's report (raw first) and queue its enrichment; refuse bots and floods with a clear 4xx."""
    values = {"text": text, "phone": phone, "lat": lat, "lon": lon}
    if website:
        # A bot filled the field people never see: answer exactly like a success (so it learns nothing), keep nothing.
        log.info("report form honeypot filled; nothing stored")
        return _lapor_page(request, settings, reference=secrets.randbelow(900_000) + 100_000)
    try:
        check_form_token(settings, token)
        if len(text.strip()) < 5:
            raise FormRejected("Tulis apa yang terjadi (minimal 5 huruf) / describe what happened (5+ letters)")
        phone_e164 = None
        if phone.strip():
            try:
                phone_e164 = subscribers.normalise_phone(phone)
            except subscribers.InvalidPhone as exc:
                raise FormRejected(f"Nomor telepon tidak dikenal / unknown phone number: {exc}") from exc
        try:
            lat_f = float(lat) if lat.strip() else None
            lon_f = float(lon) if lon.strip() else None
        except ValueError as exc:
            raise FormRejected("Koordinat tidak valid / invalid coordinates") from exc
        intake.check_coordinates(lat_f, lon_f)
        ip = client_ip(request, settings)
        author = intake.author_hash(settings.report_author_key, phone_e164 or f"ip:{ip}")
        check_rate(settings, ip=ip, phone_hash=author if phone_e164 else None)
        media = [await _save_photo(settings, photo)] if photo is not None and photo.filename else []
    except BroadcastError as exc:
        status = 429 if isinstance(exc, TooManyRequests) else 422
        return _lapor_page(request, settings, status_code=status, error=str(exc), values=values)
    sub = subscribers.find_by_phone(session, phone=phone_e164) if phone_e164 else None
    report_id, _ = intake.intake(
        session,
        source="web",
        external_id=uuid.uuid4().hex,
        raw={"text": text, "lat": lat, "lon": lon, "has_phone": bool(phone_e164), "media": media},
        text=text,
        author=author,
        lat=lat_f,
        lon=lon_f,
        media=media,
        admin_code=sub.admin_code if sub is not None else None,
    )
    session.commit()
    kick_enrichment()
    return _lapor_page(request, settings, reference=report_id)


SOURCE_LABELS = {
    "sms": ("SMS", "SMS"),
    "x": ("X", "X"),
    "web": ("Formulir web", "Web form"),
    "api": ("Mitra (API)", "Partner (API)"),
}
ALERT_STATUSES = ("Actual", "Exercise", "Test")
MAX_HOURS = 24 * 90  # as the report API's filter


class BadDashboardFilter(Invalid):
    code = "bad-dashboard-filter"


def _label(pair: tuple[str, str] | str, lang: str) -> str:
    if isinstance(pair, str):  # "Banjir / Flood"
        indonesian, _, english = pair.partition(" / ")
        pair = (indonesian, english or indonesian)
    return pair[1] if lang == "en" else pair[0]


@router.get("/pusdalops", response_class=HTMLResponse, response_model=None)
def dashboard(request: Request, session: SessionDep, settings: SettingsDep, lang: str = "id") -> Response:
    """The operations-centre dashboard: a full-width live map (offline base map, active alert areas, reports and
    incidents), filters, a reports-per-hour chart, incidents, reports and exports; Indonesian, or ?lang=en.

    Raises: BadDashboardFilter (`hours` not a number of hours from 1 minute to 90 days).
    """
    try:
        user = find_current_user(request, session, settings)
    except BroadcastError:
        user = None
    if user is None:
        return sign_in_redirect(request)
    lang = "en" if lang == "en" else "id"
    q = request.query_params
    hours = q.get("hours") or "24"
    try:
        window = float(hours)
    except ValueError:
        window = math.nan
    if not 0 < window <= MAX_HOURS:  # also refuses nan and inf
        raise BadDashboardFilter(f"hours harus angka 0-{MAX_HOURS} / hours must be a number from 0 to {MAX_HOURS}")
    flt = exports.report_filter(hazard=q.get("hazard"), source=q.get("source"), state=q.get("state"), hours=window)
    flt = exports.scoped(user, flt)
    reports = exports.list_reports(session, flt=flt, limit=300)
    incidents = exports.list_incidents(session, flt=flt, limit=100)
    counts = exports.counts_by_hour(session, flt=flt, hours=24)
    latest = session.scalar(exports.latest_report_id_stmt()) or 0
    active = select_alerts(session, statuses=ALERT_STATUSES)
    states = {key: i18n.label("report_status", key, lang) for key in rules.STATES}
    sources = {key: _label(SOURCE_LABELS.get(key, key), lang) for key in rules.SOURCES}
    return render_page(
        request,
        "pusdalops.html",
        user=user,
        lang=lang,
        reports=reports,
        incidents=incidents,
        chart=hourly_chart_svg(counts, zone=i18n.zone_of(user.jurisdiction), lang=lang),
        total=sum(n for _, n in counts),
        filters={
            "hazard": q.get("hazard", ""),
            "source": q.get("source", ""),
            "state": q.get("state", ""),
            "hours": hours,
        },
        query=request.url.query,
        hazards={key: _label(label, lang) for key, label in HAZARD_LABELS.items()},
        sources=sources,
        sources_json=json.dumps(sources),
        states=states,
        states_json=json.dumps(states),
        received=lambda r: exports.received_local(r, fallback_code=user.jurisdiction)[lang],
        alerts_geojson=json.dumps(maps.alerts_feature_collection(active), separators=(",", ":")),
        alert_count=len(active),
        demo_data=exports.has_reports_from(session, external_prefix=petabencana.EXTERNAL_PREFIX),
        tile_url=settings.map_tile_url,
        tile_attribution=settings.map_tile_attribution,
        latest_id=latest,
        place_name=_place_name,
    )


def _place_name(code: str | None) -> str:
    place = gazetteer.find_place(code) if code else None
    return place.nama if place else ""


def _nice_step(peak: int, ticks: int = 4) -> int:
    """A round step (1, 2, 5 x 10^k) giving about `ticks` gridlines up to `peak`."""
    raw = max(peak / ticks, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    return int(next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw))


def hourly_chart_svg(counts: list[tuple[datetime, int]], *, zone: i18n.Zone = i18n.WIB, lang: str = "id") -> str:
    """Reports per hour as an inline SVG bar chart with both axes, gridlines, hour labels in `zone` and axis
    titles (no script; each bar has a <title> for the exact count)."""
    width, height, left, right, top, bottom = 480, 200, 44, 10, 12, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max((n for _, n in counts), default=0)
    step = _nice_step(peak)
    top_value = max(step * math.ceil(peak / step), step)
    slot = plot_w / max(len(counts), 1)
    title = "Laporan per jam, 24 jam terakhir" if lang != "en" else "Reports per hour, last 24 hours"
    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="chart-title"><title id="chart-title">{escape(title)}</title>'
    ]
    for value in range(0, top_value + 1, step):
        y = top + plot_h - plot_h * value / top_value
        parts.append(
            f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}"></line>'
            f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{value}</text>'
        )
    for i, (at, n) in enumerate(counts):
        x = left + i * slot
        h = plot_h * n / top_value
        when = i18n.format_short(at, zone, lang)
        label = f"{when}: {n} laporan" if lang != "en" else f"{when}: {n} reports"
        parts.append(
            f'<rect class="bar" x="{x + slot * 0.1:.1f}" y="{top + plot_h - h:.1f}" width="{slot * 0.8:.1f}" '
            f'height="{h:.1f}"><title>{escape(label)}</title></rect>'
        )
        if i % 3 == 0:
            parts.append(
                f'<text class="tick" x="{x + slot / 2:.1f}" y="{top + plot_h + 16}" text-anchor="middle">'
                f"{at.astimezone(zone.tz):%H}.00</text>"
            )
    axis_y = "Laporan" if lang != "en" else "Reports"
    axis_x = f"Jam ({zone.abbr})" if lang != "en" else f"Hour ({zone.abbr})"
    parts.append(
        f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}"></line>'
        f'<line class="axis" x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}"></line>'
        f'<text class="axis-title" x="{left + plot_w / 2:.1f}" y="{height - 8}" text-anchor="middle">{axis_x}</text>'
        f'<text class="axis-title" transform="translate(14 {top + plot_h / 2:.1f}) rotate(-90)" '
        f'text-anchor="middle">{axis_y}</text></svg>'
    )
    return "".join(parts)


@router.get("/pusdalops/foto/{name}", response_model=None)
def photo(name: str, user: StaffDep, settings: SettingsDep) -> Response:
    """A photo a citizen sent with a report (staff only: it may show people and homes)."""
    if len(name) > PHOTO_NAME_LEN + 5 or not name.replace(".", "").isalnum():
        raise FormRejected("Nama berkas tidak sah / invalid file name")
    path = (settings.data_dir / "uploads" / name).resolve()
    if not path.is_file() or path.parent != (settings.data_dir / "uploads").resolve():
        return Response(status_code=404)
    return FileResponse(FilePath(path))


BasemapLevelName = Literal["provinsi", "kabupaten_kota", "kecamatan"]


@router.get(
    "/peta/dasar/{level}/{x}/{y}.geojson",
    response_class=Response,
    responses={
        200: {
            "description": "Outlines and names of the level's units touching the cell",
            "content": {"application/geo+json": {"schema": {"type": "object"}}},
        },
        404: {"description": "A cell outside Indonesia"},
    },
)
def basemap_cell(
    level: BasemapLevelName, x: Annotated[int, Path(ge=0, le=100)], y: Annotated[int, Path(ge=0, le=100)]
) -> Response:
    """The offline base map, one cell at a time: provinsi (one cell), kabupaten/kota (4 degree cells) and
    kecamatan (1 degree cells) outlines with names and label points, from the packaged boundaries."""
    return Response(
        maps.basemap_cell(level, x, y),
        media_type="application/geo+json",
        headers={"Cache-Control": "public, max-age=86400"},
    )

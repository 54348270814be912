"""Alert API: write, submit, approve, reject, and watch delivery."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import APIRouter, Query, Request, UploadFile
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from broadcast import events
from broadcast.alerts import audience, hazards, service
from broadcast.alerts.models import ALERT_STATES, MsgType
from broadcast.alerts.schemas import (
    AlertCreate,
    AlertRead,
    ApprovalRead,
    AreaResolved,
    AreaSpec,
    AuditRead,
    CancelIn,
    CapImportRead,
    CapValidationRead,
    DeliveryCounts,
    FanoutState,
    FollowUpIn,
    HazardRead,
    HazardRenderIn,
    InfoIn,
    OutboxRead,
    PeopleCounts,
    ReachRead,
    RejectIn,
)
from broadcast.api import sse
from broadcast.api.deps import (
    ApproverDep,
    AuthorDep,
    SessionDep,
    SettingsDep,
    StaffDep,
    StreamStaffDep,
    send_events,
)
from broadcast.audit import service as audit
from broadcast.db import get_engine, session_factory
from broadcast.dispatch.progress import (
    PeopleProgress,
    is_settled,
    outbox_for,
    people_progress,
    progress,
    social_posts_since,
)
from broadcast.dispatch.wiring import configured_renderers, recipient_cap_usage
from broadcast.errors import Invalid
from broadcast.settings import Environment

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])
cap_router = APIRouter(prefix="/api/v1/cap", tags=["cap"])
hazard_router = APIRouter(prefix="/api/v1/hazards", tags=["hazards"])
areas_router = APIRouter(prefix="/api/v1/areas", tags=["areas"])
CAP_MEDIA = "application/cap+xml"
STATE_PATTERN = "^(" + "|".join(ALERT_STATES) + ")$"


def fanout_state(sent: list[events.Sent]) -> FanoutState:
    """What the approval answers about its fan-out: queued, or waiting in the outbox because the broker refused
    it (the worker and beat send it as soon as the broker answers)."""
    if all(s.queued for s in sent if isinstance(s.event, events.AlertApproved)):
        return FanoutState(queued=True, detail="Penyebaran dimulai / fan-out queued")
    return FanoutState(
        queued=False,
        detail=(
            "Broker antrean tidak terjangkau: penyebaran menunggu dan dimulai otomatis saat broker kembali / "
            "the task broker is unreachable: the fan-out is waiting and starts by itself when the broker is back"
        ),
    )


@router.post("", status_code=201)
def create_alert(body: AlertCreate, user: AuthorDep, session: SessionDep, settings: SettingsDep) -> AlertRead:
    """Write a new draft alert."""
    alert = service.create_alert(session, data=body, author=user, sender=settings.sender_id)
    session.commit()
    return AlertRead.model_validate(alert)


@router.get("")
def list_alerts(
    user: StaffDep,
    session: SessionDep,
    state: str | None = Query(default=None, pattern=STATE_PATTERN),
    limit: int = Query(default=50, ge=1, le=500),
    offset: int = Query(default=0, ge=0),
) -> list[AlertRead]:
    """Alerts, newest first."""
    found = service.list_alerts(session, state=state, limit=limit, offset=offset)
    return [AlertRead.model_validate(a) for a in service.readable(user, found)]


@router.get("/{alert_id}")
def get_alert(alert_id: int, user: StaffDep, session: SessionDep) -> AlertRead:
    """One alert."""
    return AlertRead.model_validate(service.read_alert(session, alert_id=alert_id, actor=user))


@router.put("/{alert_id}")
def edit_alert(alert_id: int, body: AlertCreate, user: AuthorDep, session: SessionDep) -> AlertRead:
    """Replace the content of a draft."""
    alert = service.edit_draft(session, alert_id=alert_id, data=body, actor=user)
    session.commit()
    return AlertRead.model_validate(alert)


@router.post("/{alert_id}/submit")
def submit(alert_id: int, user: AuthorDep, session: SessionDep) -> AlertRead:
    """Send a draft to the approval queue."""
    alert = service.submit_alert(session, alert_id=alert_id, actor=user)
    session.commit()
    return AlertRead.model_validate(alert)


@router.post("/{alert_id}/approve", status_code=202)
def approve(
    alert_id: int, request: Request, user: ApproverDep, session: SessionDep, settings: SettingsDep
) -> ApprovalRead:
    """Approve a submitted alert (by a second person) and start delivery. `fanout.queued` is false when the
    broker is down: the fan-out waits in the database and starts by itself when the broker answers again."""
    production = settings.environment is Environment.PRODUCTION
    alert = service.approve_alert(session, alert_id=alert_id, approver=user, production=production)
    service.start_delivery(session, alert=alert)
    session.commit()
    fanout = fanout_state(send_events(request, session))
    return ApprovalRead.model_validate({**AlertRead.model_validate(alert).model_dump(), "fanout": fanout})


@router.post("/{alert_id}/reject")
def reject(alert_id: int, body: RejectIn, user: ApproverDep, session: SessionDep) -> AlertRead:
    """Send a submitted alert back to its author with a reason."""
    alert = service.reject_alert(session, alert_id=alert_id, approver=user, reason=body.reason)
    session.commit()
    return AlertRead.model_validate(alert)


@router.get("/{alert_id}/deliveries")
def deliveries(alert_id: int, user: StaffDep, session: SessionDep, settings: SettingsDep) -> list[DeliveryCounts]:
    """Delivery progress per channel."""
    service.read_alert(session, alert_id=alert_id, actor=user)
    rows = progress(session, alert_id=alert_id)
    return [
        DeliveryCounts(channel=r.channel, mode=settings.channel_mode(r.channel), total=r.total, by_state=r.by_state)
        for r in rows
    ]


def _people(p: PeopleProgress) -> PeopleCounts:
    return PeopleCounts(people=p.people, reached=p.reached, delivered=p.delivered, failed=p.failed, waiting=p.waiting)


@router.get("/{alert_id}/people")
def people(alert_id: int, user: StaffDep, session: SessionDep) -> PeopleCounts:
    """Delivery progress by person: each person counts once, whichever of their channels reached them."""
    service.read_alert(session, alert_id=alert_id, actor=user)
    return _people(people_progress(session, alert_id=alert_id))


@router.get("/{alert_id}/progress/stream", response_class=StreamingResponse)
async def progress_stream(
    alert_id: int,
    request: Request,
    user: StreamStaffDep,
    settings: SettingsDep,
    interval_s: float = Query(default=1.0, ge=0.2, le=10),
) -> StreamingResponse:
    """Server-sent events: per-channel delivery counts every `interval_s` until every delivery settled
    (event `done`) or ten minutes passed. Every stream of one alert shares one polling loop (broadcast.api.sse)
    and holds no database session while it waits."""
    engine = get_engine(settings.resolved_database_url)

    def may_read() -> None:
        with session_factory(engine)() as s:
            service.read_alert(s, alert_id=alert_id, actor=user)

    await run_in_threadpool(may_read)  # 404 or 403 (another jurisdiction's draft) before the stream starts
    read = _progress_reader(engine, alert_id)
    _, first, settled = await run_in_threadpool(read, None)  # 404 before the stream starts
    if settled:
        events = sse.replay(first)
    else:
        events = sse.subscribe(
            sse.hub_for(request.app.state),
            ("progress", alert_id),
            lambda: (read, None),
            interval_s=interval_s,
            first=first,
        )
    return sse.response(events)


def _progress_reader(engine: Any, alert_id: int) -> sse.Reader:
    """Reads one alert's progress: the per-channel `progress` frame with a `people` frame (counted by person), or
    the `people` frame and `done` once every delivery settled."""

    def read(state: None) -> tuple[None, list[str], bool]:
        with session_factory(engine)() as s:
            rows = progress(s, alert_id=alert_id)
            settled = is_settled(s, alert_id=alert_id, rows=rows)
            counted = _people(people_progress(s, alert_id=alert_id))
        payload = [
            {"channel": r.channel, "total": r.total, "finished": r.finished, "by_state": r.by_state} for r in rows
        ]
        people_frame = sse.frame("people", counted.model_dump())
        if settled:  # `done` stays the last frame of the stream
            return None, [people_frame, sse.frame("done", payload)], True
        return None, [sse.frame("progress", payload), people_frame], False

    return read


@router.get("/{alert_id}/outbox")
def outbox(alert_id: int, user: AuthorDep, session: SessionDep) -> list[OutboxRead]:
    """Messages channels in outbox mode recorded instead of sending (phone numbers: inside the jurisdiction)."""
    service.read_alert(session, alert_id=alert_id, actor=user, what="outbox")
    return [OutboxRead.model_validate(m) for m in outbox_for(session, alert_id=alert_id)]


@router.get("/{alert_id}/preview")
def preview(alert_id: int, user: StaffDep, session: SessionDep, settings: SettingsDep) -> dict[str, Any]:
    """The exact text every chosen channel will send, per language, and under "reach" who it reaches."""
    from broadcast.alerts import composer

    alert = service.read_alert(session, alert_id=alert_id, actor=user)
    data = service.to_alert_data(alert, public_base_url=settings.public_base_url)
    out: dict[str, Any] = composer.channel_previews(data, list(alert.channels), configured_renderers(settings))
    out["reach"] = audience.alert_reach(session, alert=alert)
    return out


@router.get("/{alert_id}/reach")
def alert_reach(alert_id: int, user: StaffDep, session: SessionDep) -> ReachRead:
    """Matched subscribers per channel and the estimated population of the alert's areas."""
    alert = service.read_alert(session, alert_id=alert_id, actor=user)
    return ReachRead.model_validate(audience.alert_reach(session, alert=alert))


@router.get("/{alert_id}/map.geojson")
def alert_map_geojson(alert_id: int, user: StaffDep, session: SessionDep) -> Response:
    """The target and its CAP polygons as a GeoJSON FeatureCollection for the web map."""
    alert = service.read_alert(session, alert_id=alert_id, actor=user)
    return Response(json.dumps(audience.alert_map_geojson(alert)), media_type="application/geo+json")


@router.get("/{alert_id}/map.png", response_class=Response)
def alert_map_png(alert_id: int, user: StaffDep, session: SessionDep) -> Response:
    """A PNG map of the target, kabupaten outlines and CAP polygons, for posts and reports."""
    alert = service.read_alert(session, alert_id=alert_id, actor=user)
    png = audience.alert_map_png(alert)
    if png is None:
        raise Invalid("Peringatan ini tidak punya area di peta / this alert has no mappable area", code="no-geometry")
    return Response(png, media_type="image/png")


@router.get("/{alert_id}/x-caps")
def x_caps(alert_id: int, user: StaffDep, session: SessionDep, settings: SettingsDep) -> dict[str, object]:
    """Whether posting this alert's thread would go over X's 24-hour caps, said before approval."""
    from datetime import timedelta

    from broadcast.db import utcnow
    from channels.social import XRenderer, check_posting_caps

    alert = service.read_alert(session, alert_id=alert_id, actor=user)
    data = service.to_alert_data(alert, public_base_url=settings.public_base_url)
    renderer = configured_renderers(settings)["social"]
    planned = len(renderer.render_thread(data)) if "social" in alert.channels and isinstance(renderer, XRenderer) else 0
    # Every account is counted together: conservative for each one, exact for the app-wide cap.
    posted = social_posts_since(session, since=utcnow() - timedelta(hours=24), public_base_url=settings.public_base_url)
    check = check_posting_caps(planned, account_posts_24h=posted, app_posts_24h=posted)
    return {
        "planned_posts": planned,
        "posts_last_24h": posted,
        "exceeds": check.exceeds,
        "account_excess": check.account_excess,
        "app_excess": check.app_excess,
        "message": " / ".join(m for m in (check.message_id, check.message_en) if m),
    }


@router.get("/{alert_id}/audit")
def audit_trail(alert_id: int, user: StaffDep, session: SessionDep) -> list[AuditRead]:
    """Every recorded change of this alert, oldest first."""
    service.read_alert(session, alert_id=alert_id, actor=user, what="audit")
    return [AuditRead.model_validate(e) for e in audit.entries_for(session, subject_type="alert", subject_id=alert_id)]


@router.post("/{alert_id}/update", status_code=201)
def start_update(alert_id: int, body: FollowUpIn, user: AuthorDep, session: SessionDep) -> AlertRead:
    """A draft Update of a published alert, prefilled from it."""
    alert = service.create_follow_up(
        session, original_id=alert_id, actor=user, msg_type=MsgType.UPDATE, reason=body.reason
    )
    session.commit()
    return AlertRead.model_validate(alert)


@router.post("/{alert_id}/correct", status_code=201)
def start_correction(alert_id: int, body: FollowUpIn, user: AuthorDep, session: SessionDep) -> AlertRead:
    """A correction: an Update of the original created in one step, ready to edit and submit."""
    alert = service.create_follow_up(
        session,
        original_id=alert_id,
        actor=user,
        msg_type=MsgType.UPDATE,
        reason=body.reason,
        correction=True,
    )
    session.commit()
    return AlertRead.model_validate(alert)


@router.post("/{alert_id}/cancel", status_code=201)
def start_cancel(alert_id: int, body: CancelIn, user: AuthorDep, session: SessionDep) -> AlertRead:
    """A draft Cancel of a published alert; it reaches the same people once approved."""
    alert = service.create_follow_up(
        session,
        original_id=alert_id,
        actor=user,
        msg_type=MsgType.CANCEL,
        reason=body.reason,
        reason_en=body.reason_en or None,
    )
    session.commit()
    return AlertRead.model_validate(alert)


@router.get("/{alert_id}/cap", response_class=Response)
def alert_cap(alert_id: int, user: StaffDep, session: SessionDep) -> Response:
    """The alert as schema-valid CAP 1.2 XML (drafts too, for review)."""
    alert = service.read_alert(session, alert_id=alert_id, actor=user)
    return Response(service.export_cap(alert), media_type=CAP_MEDIA)


async def _xml_body(request: Request) -> bytes:
    ctype = request.headers.get("content-type", "").split(";")[0].strip()
    if ctype not in ("application/xml", "text/xml", CAP_MEDIA, "application/atom+xml", "application/rss+xml"):
        raise Invalid(
            f"Kirim XML (Content-Type application/xml) / send XML, not {ctype or 'nothing'}",
            code="unsupported-media-type",
        )
    return await request.body()


@cap_router.post("/validate")
async def validate_cap(request: Request, user: StaffDep) -> CapValidationRead:
    """Check a CAP 1.1/1.2 document or a feed of them; says why when it is not valid."""
    from broadcast.cap import validation

    report = validation.validate_document(await _xml_body(request))
    return CapValidationRead.model_validate(report, from_attributes=True)


@cap_router.post("/import", status_code=201)
async def import_cap(request: Request, user: AuthorDep, session: SessionDep, settings: SettingsDep) -> CapImportRead:
    """Turn each valid CAP message (or feed entry) in the body into a draft alert. Linked CAP
    documents are not fetched from here (use the CLI). A sender with a configured certificate must sign."""
    from broadcast.intake import cap_documents
    from broadcast.trust.senders import trusted_certs

    data = await _xml_body(request)
    result = cap_documents.import_document(
        session,
        data,
        author=user,
        origin="cap-import",
        fetch=None,
        trusted_certs=trusted_certs(settings.cap_signing.trusted_senders),
        sender=settings.sender_id,
    )
    if not result.imported:
        session.rollback()
        raise Invalid(
            "Tidak ada pesan yang bisa diimpor / nothing importable: "
            + "; ".join(f"{s.item}: {s.reason}" for s in result.skipped[:5]),
            code="invalid-cap",
        )
    session.commit()
    return CapImportRead.model_validate(result, from_attributes=True)


@hazard_router.get("")
def list_hazards(user: StaffDep) -> list[HazardRead]:
    """The hazard message templates and the fields each one asks for."""
    return [HazardRead.model_validate(h, from_attributes=True) for h in hazards.catalog()]


@hazard_router.post("/{key}/render")
def render_hazard(key: str, body: HazardRenderIn, user: StaffDep) -> list[InfoIn]:
    """Info blocks (Indonesian first, then English) filled from the template; the operator edits them."""
    return hazards.render(key, body.fields)


@areas_router.post("/resolve")
def resolve_area(body: AreaSpec, user: AuthorDep, session: SessionDep) -> AreaResolved:
    """An area spec as the composer needs it: target GeoJSON, CAP polygons, overshoot, warnings and reach."""
    return AreaResolved.model_validate(audience.resolve_for_composer(session, spec=body, user=user))


@router.post("/preview")
def preview_draft(
    body: AlertCreate,
    user: AuthorDep,
    session: SessionDep,
    settings: SettingsDep,
    alert_id: int | None = Query(default=None, ge=1, description="the stored draft being edited, if any"),
) -> dict[str, Any]:
    """Previews of an unsaved composer body from the configured renderers: SMS text per language with
    encoding, segments and budget, the X thread with lengths, CAP XML, the public page, reach and the confirm
    sentence. Without `alert_id` the code, identifier and links are placeholders (listed as such); with it they
    are that alert's own. Nothing is stored."""
    from broadcast.alerts import composer

    existing = service.read_alert(session, alert_id=alert_id, actor=user) if alert_id is not None else None
    alert = composer.draft_alert(session, data=body, author=user, sender=settings.sender_id, existing=existing)
    out = composer.previews(
        session,
        alert=alert,
        public_base_url=settings.public_base_url,
        renderers=configured_renderers(settings),
        placeholders=existing is None,
        caps=recipient_cap_usage(settings, list(alert.channels)),
    )
    out["public_html"] = composer.public_page_html(alert)
    session.rollback()
    return out


@router.get("/{alert_id}/previews")
def stored_previews(alert_id: int, user: StaffDep, session: SessionDep, settings: SettingsDep) -> dict[str, Any]:
    """The same previews as POST /preview, for a stored alert (what the approver reviews)."""
    from broadcast.alerts import composer

    alert = service.read_alert(session, alert_id=alert_id, actor=user)
    return composer.previews(
        session,
        alert=alert,
        public_base_url=settings.public_base_url,
        renderers=configured_renderers(settings),
        caps=recipient_cap_usage(settings, list(alert.channels)),
    )


@areas_router.get("/children")
def child_areas(
    user: StaffDep, code: str | None = Query(default=None, max_length=20, description="parent code; none: provinsi")
) -> Response:
    """Boundaries one level below `code` as GeoJSON, for clicking areas on the composer map."""
    from broadcast.alerts import composer

    return Response(json.dumps(composer.child_areas(code or None)), media_type="application/geo+json")


@areas_router.get("/search")
def search_areas(user: StaffDep, q: str = Query(min_length=1, max_length=100)) -> list[dict[str, Any]]:
    """Places by name or code (typos allowed), inside the user's jurisdiction first."""
    from broadcast.alerts import composer

    return composer.search_places(q, jurisdiction=user.jurisdiction)


@areas_router.post("/upload")
async def upload_area(user: AuthorDep, file: UploadFile) -> Response:
    """A GeoJSON, zipped Shapefile or KML file → one polygonal GeoJSON geometry for the composer's area (then
    checked by /areas/resolve like anything drawn)."""
    from broadcast.errors import InvalidGeometry, TooLarge
    from geo import uploads
    from geo.errors import GeoError

    data = await file.read(uploads.MAX_UPLOAD_BYTES + 1)
    try:
        # Parsing takes CPU: in a worker thread, so the event loop keeps answering everyone else.
        body = await run_in_threadpool(_parsed_upload, file.filename or "", data)
    except GeoError as exc:
        if exc.code in uploads.OVERSIZE:
            raise TooLarge(str(exc), code=exc.code) from None
        raise InvalidGeometry.from_geo(exc) from None
    return Response(body, media_type="application/json")


MAX_UPLOAD_RESPONSE_BYTES = 2_000_000


def _parsed_upload(filename: str, data: bytes) -> bytes:
    """The upload answer as JSON bytes, refused when larger than MAX_UPLOAD_RESPONSE_BYTES.

    Raises: GeoError.
    """
    import shapely

    from geo import uploads
    from geo.errors import GeoError

    fmt, geom, count = uploads.parse_upload(filename, data)
    body = json.dumps({"format": fmt, "shapes": count, "geometry": shapely.geometry.mapping(geom)}).encode()
    if len(body) > MAX_UPLOAD_RESPONSE_BYTES:
        raise GeoError(
            "upload-too-large",
            f"Hasil lebih dari {MAX_UPLOAD_RESPONSE_BYTES} byte: sederhanakan berkasnya",
            f"the result is larger than {MAX_UPLOAD_RESPONSE_BYTES} bytes: simplify the file",
        )
    return body

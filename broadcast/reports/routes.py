"""Reports API: partner intake, triage, incidents, export and the live stream for the operations centre."""

from __future__ import annotations

import hmac
import json
import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from broadcast.api import sse
from broadcast.api.deps import SessionDep, SettingsDep, StaffDep, StreamStaffDep, find_current_user
from broadcast.db import get_engine, session_factory, utcnow
from broadcast.errors import Unauthorized, Unavailable
from broadcast.reports import exports, incidents, intake, triage
from broadcast.reports.intake import IntakeWriter
from broadcast.reports.models import Incident, Report
from broadcast.reports.schemas import ReportAccepted, ReportCreate, StateIn, TriageIn
from broadcast.reports.tasks import kick_enrichment
from broadcast.settings import Settings

router = APIRouter(prefix="/api/v1", tags=["reports"])
# The partner intake alone, included first in the app: the busiest route is matched before all others.
intake_router = APIRouter(prefix="/api/v1", tags=["reports"])
API_KEY_HEADER = "x-api-key"


def _staff_caller(request: Request, settings: Settings) -> str:
    with session_factory(get_engine(settings.resolved_database_url))() as session:
        user = find_current_user(request, session, settings)
    if user is None:
        raise Unauthorized("Perlu kunci API atau masuk / API key or sign-in required", code="not-authenticated")
    return f"user:{user.id}"


def _writer(request: Request, settings: Settings) -> IntakeWriter:
    writer = getattr(request.app.state, "report_writer", None)
    if writer is None:
        writer = IntakeWriter(
            get_engine(settings.resolved_database_url),
            after_commit=kick_enrichment,
            batching=settings.report_intake_batching,
        )
        request.app.state.report_writer = writer
    return writer


async def report_caller(request: Request) -> str:
    """Who is posting a report: a partner by its X-API-Key, else signed-in staff. A dependency, so a caller
    without either is refused (401) before the body is even read.

    Raises: Unauthorized.
    """
    settings: Settings = request.app.state.settings
    key = request.headers.get(API_KEY_HEADER)
    if key is None:
        return await run_in_threadpool(_staff_caller, request, settings)
    for name, secret in settings.report_api_keys.items():
        if hmac.compare_digest(key.encode(), secret.get_secret_value().encode()):
            return f"partner:{name}"
    raise Unauthorized("Kunci API tidak valid / invalid API key", code="invalid-api-key")


@intake_router.post("/reports", status_code=202)
async def create_report(
    body: ReportCreate, request: Request, caller: Annotated[str, Depends(report_caller)]
) -> ReportAccepted:
    """Store a report from a partner (X-API-Key) or staff (token): raw first, committed before the answer, then
    enrichment is queued; the same external_id twice stores one. Async with no thread hop but the batched write.

    Raises: Unauthorized, InvalidReport, Unavailable (the database refused the write).
    """
    settings: Settings = request.app.state.settings
    row = intake.intake_values(
        source="api",
        external_id=f"{caller}:{body.external_id or uuid.uuid4().hex}",
        raw={"caller": caller, **body.model_dump(mode="json")},
        text=body.text,
        author=intake.author_hash(settings.report_author_key, f"{caller}:{body.author}") if body.author else None,
        lat=body.lat,
        lon=body.lon,
        media=body.media,
        received_at=body.occurred_at,
        language=body.language,
        hazard=body.hazard,
    )
    try:
        report_id, created = await _writer(request, settings).submit(row)
    except SQLAlchemyError as exc:
        raise Unavailable(
            "Laporan belum tersimpan, kirim ulang / report not stored, send it again", code="intake-unavailable"
        ) from exc
    return ReportAccepted(id=report_id, created=created)


def report_filter(
    hazard: str | None = None,
    source: str | None = None,
    state: str | None = None,
    hours: float | None = Query(default=None, gt=0, le=24 * 90),
) -> exports.ReportFilter:
    """Filters shared by the list, export and stream endpoints (the dashboard page builds the same)."""
    return exports.report_filter(hazard=hazard, source=source, state=state, hours=hours)


FilterDep = Annotated[exports.ReportFilter, Depends(report_filter)]


@router.get("/reports/export.geojson")
def export_geojson(user: StaffDep, session: SessionDep, flt: FilterDep) -> Response:
    """Located reports and incidents matching the filters as GeoJSON."""
    flt = exports.scoped(user, flt)
    data = exports.export_geojson(
        exports.list_reports(session, flt=flt, limit=50_000), exports.list_incidents(session, flt=flt, limit=5_000)
    )
    return Response(
        json.dumps(data, ensure_ascii=False),
        media_type="application/geo+json",
        headers={"Content-Disposition": 'attachment; filename="laporan.geojson"'},
    )


@router.get("/reports/export.csv")
def export_csv(user: StaffDep, session: SessionDep, flt: FilterDep) -> Response:
    """Reports matching the filters as CSV."""
    flt = exports.scoped(user, flt)
    return Response(
        exports.export_csv(exports.list_reports(session, flt=flt, limit=50_000)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="laporan.csv"'},
    )


@router.get("/reports/stream", response_class=StreamingResponse)
async def stream(
    request: Request,
    user: StreamStaffDep,
    settings: SettingsDep,
    after_id: int = Query(default=0, ge=0),
    interval_s: float = Query(default=1.0, ge=0.2, le=10),
) -> StreamingResponse:
    """Server-sent events for the live map: `report` for each new or newly enriched report, `incident` for each
    changed incident; the stream ends after ten minutes (the browser reconnects). Every open stream shares one
    polling loop (broadcast.api.sse) and holds no database session while it waits."""
    engine = get_engine(settings.resolved_database_url)
    hub = sse.hub_for(request.app.state)
    scope = exports.scoped(user, exports.ReportFilter())  # only reports inside the caller's jurisdiction

    def catch_up() -> tuple[list[str], tuple[int, datetime]]:
        checked = utcnow()
        with session_factory(engine)() as s:
            reports = exports.reports_changed(s, after_id=after_id, enriched_after=None, flt=scope)
            frames = [sse.frame("report", exports.report_summary(r, zone_code=scope.within)) for r in reports]
        return frames, (max([after_id, *(r.id for r in reports)]), checked)

    frames, cursor = await run_in_threadpool(catch_up)
    # A feed started by this stream goes on from where its catch-up ended; a running feed is already there.
    events = sse.subscribe(
        hub,
        ("reports", scope.within, scope.national),  # one feed per jurisdiction
        lambda: (_read_live_reports(engine, scope), cursor),
        interval_s=interval_s,
        first=["retry: 2000\n\n", *frames],
    )
    return sse.response(events)


def _read_live_reports(engine: Any, scope: exports.ReportFilter) -> sse.Reader:
    """The live feed's reader: state (last id, since) → new or newly enriched reports and changed incidents inside
    `scope`'s jurisdiction."""

    def read(state: tuple[int, datetime]) -> tuple[tuple[int, datetime], list[str], bool]:
        checked = utcnow()
        last_id, since = state
        with session_factory(engine)() as s:
            reports = exports.reports_changed(s, after_id=last_id, enriched_after=since, flt=scope)
            changed = exports.list_incidents(s, flt=scope, updated_after=since)
            frames = [sse.frame("report", exports.report_summary(r, zone_code=scope.within)) for r in reports]
            frames += [sse.frame("incident", exports.incident_summary(i)) for i in changed]
        if reports:
            last_id = max(last_id, max(r.id for r in reports))
        return (last_id, checked - timedelta(seconds=1) if frames else checked), frames, False

    return read


@router.get("/reports")
def list_reports(
    user: StaffDep, session: SessionDep, flt: FilterDep, limit: int = Query(default=200, ge=1, le=5000)
) -> list[dict[str, Any]]:
    """Reports matching the filters, newest first."""
    flt = exports.scoped(user, flt)
    return [exports.report_summary(r) for r in exports.list_reports(session, flt=flt, limit=limit)]


@router.get("/reports/{report_id}")
def read_report(report_id: int, user: StaffDep, session: SessionDep) -> dict[str, Any]:
    """One report, with its enrichment state (and the error when it failed)."""
    return exports.report_summary(triage.get_report_for(session, report_id=report_id, actor=user))


@router.post("/reports/{report_id}/state")
def set_report_state(report_id: int, body: StateIn, user: StaffDep, session: SessionDep) -> dict[str, Any]:
    """Triage a report: verified, dismissed or actioned (audited)."""
    report = triage.set_state(session, report_id=report_id, state=body.state, actor=user, note=body.note)
    session.commit()
    return exports.report_summary(report)


@router.post("/reports/{report_id}/triage")
def triage_report(report_id: int, body: TriageIn, user: StaffDep, session: SessionDep) -> dict[str, Any]:
    """Assign a report and add a note (audited)."""
    report = triage.update_triage(
        session, model=Report, subject_id=report_id, actor=user, assignee_id=body.assignee_id, note=body.note
    )
    session.commit()
    return exports.report_summary(report)


@router.get("/incidents")
def list_incidents(
    user: StaffDep, session: SessionDep, flt: FilterDep, limit: int = Query(default=200, ge=1, le=5000)
) -> list[dict[str, Any]]:
    """Incidents (grouped reports) matching the filters, most recently active first."""
    flt = exports.scoped(user, flt)
    return [exports.incident_summary(i) for i in exports.list_incidents(session, flt=flt, limit=limit)]


@router.get("/incidents/{incident_id}")
def read_incident(incident_id: int, user: StaffDep, session: SessionDep) -> dict[str, Any]:
    """One incident with its reports."""
    incident = triage.get_incident_for(session, incident_id=incident_id, actor=user)
    return {
        **exports.incident_summary(incident),
        "reports": [exports.report_summary(r) for r in exports.incident_reports(session, incident_id=incident.id)],
    }


@router.post("/incidents/{incident_id}/state")
def set_incident_state(incident_id: int, body: StateIn, user: StaffDep, session: SessionDep) -> dict[str, Any]:
    """Triage an incident and its reports (audited)."""
    incident = incidents.set_incident_state(
        session, incident_id=incident_id, state=body.state, actor=user, note=body.note
    )
    session.commit()
    return exports.incident_summary(incident)


@router.post("/incidents/{incident_id}/triage")
def triage_incident(incident_id: int, body: TriageIn, user: StaffDep, session: SessionDep) -> dict[str, Any]:
    """Assign an incident and add a note (audited)."""
    incident = triage.update_triage(
        session, model=Incident, subject_id=incident_id, actor=user, assignee_id=body.assignee_id, note=body.note
    )
    session.commit()
    return exports.incident_summary(incident)


@router.post("/incidents/{incident_id}/draft-alert", status_code=201)
def draft_alert(incident_id: int, user: StaffDep, session: SessionDep, settings: SettingsDep) -> dict[str, Any]:
    """Turn an incident into a draft alert for its kecamatan from the hazard's template (needs approval)."""
    alert = incidents.draft_alert_from_incident(session, incident_id=incident_id, actor=user, sender=settings.sender_id)
    session.commit()
    return {"alert_id": alert.id, "identifier": alert.identifier, "state": alert.state, "edit_url": "/konsol"}

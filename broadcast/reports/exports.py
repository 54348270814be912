"""What staff get out of the reports: filtered lists (scoped to their jurisdiction), the live feed's reads, the
per-hour chart, the plain summaries every view shows, and GeoJSON and CSV exports."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, false, func, or_, select
from sqlalchemy.orm import Session

from broadcast import csvexport
from broadcast.authority import Action as Can
from broadcast.authority import Actor, Target, require
from broadcast.db import utcnow
from broadcast.reports.models import Incident, Report
from templates import i18n

__all__ = [
    "EXPORT_COLUMNS",
    "ReportFilter",
    "counts_by_hour",
    "export_csv",
    "export_geojson",
    "has_reports_from",
    "incident_reports",
    "incident_summary",
    "latest_report_id_stmt",
    "list_incidents",
    "list_reports",
    "received_local",
    "report_filter",
    "report_summary",
    "reports_changed",
    "scoped",
]


@dataclass(frozen=True, slots=True)
class ReportFilter:
    hazard: str | None = None
    source: str | None = None
    state: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    after_id: int | None = None
    # Set by `scoped`: only rows located inside this jurisdiction; without `national`, never unlocated rows.
    within: str | None = None
    national: bool = True


def report_filter(
    *, hazard: str | None = None, source: str | None = None, state: str | None = None, hours: float | None = None
) -> ReportFilter:
    """The filters of the list, export and stream endpoints and of the dashboard page (empty values: any;
    `hours`: only the last so many hours)."""
    since = utcnow() - timedelta(hours=hours) if hours else None
    return ReportFilter(hazard=hazard or None, source=source or None, state=state or None, since=since)


def scoped(actor: Actor, flt: ReportFilter) -> ReportFilter:
    """The filter limited to what `actor` may read: reports and incidents located inside their jurisdiction
    (national staff: everything).

    Raises: RoleNotAllowed.
    """
    require(actor, Can.REPORT_READ, Target())
    return replace(flt, within=actor.jurisdiction, national=actor.jurisdiction is None)


def _filtered(stmt: Select[Any], flt: ReportFilter, model: Any = Report) -> Select[Any]:
    if not flt.national:
        if flt.within is None:
            return stmt.where(false())
        stmt = stmt.where(or_(model.admin_code == flt.within, model.admin_code.like(flt.within + ".%")))
    if flt.hazard:
        stmt = stmt.where(model.hazard == flt.hazard)
    if flt.state:
        stmt = stmt.where(model.state == flt.state)
    if model is Report:
        if flt.source:
            stmt = stmt.where(Report.source == flt.source)
        if flt.since:
            stmt = stmt.where(Report.received_at >= flt.since)
        if flt.until:
            stmt = stmt.where(Report.received_at <= flt.until)
        if flt.after_id:
            stmt = stmt.where(Report.id > flt.after_id)
        stmt = stmt.where(Report.command.is_(None))
    elif flt.since:
        stmt = stmt.where(Incident.last_at >= flt.since)
    return stmt


def list_reports(session: Session, *, flt: ReportFilter, limit: int = 500) -> list[Report]:
    """Reports (not SMS commands) matching the filter, newest first."""
    stmt = _filtered(select(Report), flt).order_by(Report.id.desc()).limit(limit)
    return list(session.scalars(stmt))


def reports_changed(
    session: Session,
    *,
    after_id: int,
    enriched_after: datetime | None,
    limit: int = 500,
    flt: ReportFilter | None = None,
) -> list[Report]:
    """Reports stored after `after_id` or enriched after `enriched_after`, oldest first (for live updates),
    limited by `flt`'s jurisdiction when given (see `scoped`)."""
    cond = Report.id > after_id
    if enriched_after is not None:
        cond = or_(cond, Report.enriched_at > enriched_after)
    scope = ReportFilter(within=flt.within, national=flt.national) if flt is not None else ReportFilter()
    stmt = _filtered(select(Report).where(cond), scope).order_by(Report.id).limit(limit)
    return list(session.scalars(stmt))


def incident_reports(session: Session, *, incident_id: int) -> list[Report]:
    """The reports grouped into an incident (duplicates included), oldest first."""
    return list(session.scalars(select(Report).where(Report.incident_id == incident_id).order_by(Report.id)))


def list_incidents(
    session: Session, *, flt: ReportFilter, updated_after: datetime | None = None, limit: int = 200
) -> list[Incident]:
    """Incidents matching the filter (hazard, state, active since), most recently active first."""
    stmt = _filtered(select(Incident), flt, Incident)
    if updated_after is not None:
        stmt = stmt.where(Incident.updated_at > updated_after)
    return list(session.scalars(stmt.order_by(Incident.last_at.desc()).limit(limit)))


def counts_by_hour(session: Session, *, flt: ReportFilter, hours: int = 24) -> list[tuple[datetime, int]]:
    """Reports per hour over the last `hours` hours (oldest first), for the dashboard chart."""
    end = utcnow().replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = end - timedelta(hours=hours)
    since = max(flt.since, start) if flt.since else start
    stmt = _filtered(select(Report.received_at), ReportFilter(**{**_asdict(flt), "since": since}))
    buckets = [0] * hours
    for (at,) in session.execute(stmt):
        i = int((at - start).total_seconds() // 3600)
        if 0 <= i < hours:
            buckets[i] += 1
    return [(start + timedelta(hours=i), n) for i, n in enumerate(buckets)]


def _asdict(flt: ReportFilter) -> dict[str, Any]:
    return {k: getattr(flt, k) for k in flt.__slots__}


def has_reports_from(session: Session, *, external_prefix: str) -> bool:
    """True when any report's external id starts with `external_prefix` (e.g. the replayed demo data)."""
    stmt = select(Report.id).where(Report.external_id.startswith(external_prefix, autoescape=True)).limit(1)
    return session.scalar(stmt) is not None


def latest_report_id_stmt() -> Select[Any]:
    """The newest report id (where a live view starts streaming from)."""
    return select(func.max(Report.id))


def received_local(report: Report, *, fallback_code: str | None = None) -> dict[str, str]:
    """When the report arrived as staff read it, per language ({"id": "7 Des 20.52 WITA", "en": "7 Dec 20:52
    WITA"}): in the zone of its place, else of `fallback_code` (the viewer's jurisdiction), else WIB. The
    dashboard's rows, server-rendered or added live, show this."""
    zone = i18n.zone_of(report.admin_code or fallback_code)
    return {lang: i18n.format_short(report.received_at, zone, lang) for lang in ("id", "en")}


def report_summary(report: Report, *, zone_code: str | None = None) -> dict[str, Any]:
    """The plain fields of a report shown to staff and exported (never the raw payload or the phone);
    `received_local` is its time as `received_local` words it, `zone_code` standing in for an unplaced report."""
    return {
        "id": report.id,
        "source": report.source,
        "received_at": report.received_at.isoformat(),
        "received_local": received_local(report, fallback_code=zone_code),
        "text": report.text,
        "language": report.language,
        "hazard": report.hazard,
        "hazard_confidence": report.hazard_confidence,
        "depth_cm": report.depth_cm,
        "severity": report.severity,
        "lat": report.lat,
        "lon": report.lon,
        "admin_code": report.admin_code,
        "kecamatan_code": report.kecamatan_code,
        "geocode_method": report.geocode_method,
        "geocode_reason": report.geocode_reason,
        "place_names": list(report.place_names or []),
        "street": report.street,
        "rw": report.rw,
        "state": report.state,
        "processing": report.processing,
        "attempts": report.attempts,
        "last_error": report.last_error,
        "incident_id": report.incident_id,
        "duplicate_of_id": report.duplicate_of_id,
        "alert_ids": list(report.alert_ids or []),
        "media": list(report.media or []),
        "assignee_id": report.assignee_id,
        "notes": report.notes,
    }


def incident_summary(incident: Incident) -> dict[str, Any]:
    """The plain fields of an incident."""
    return {
        "id": incident.id,
        "hazard": incident.hazard,
        "lat": incident.lat,
        "lon": incident.lon,
        "admin_code": incident.admin_code,
        "kecamatan_code": incident.kecamatan_code,
        "street": incident.street,
        "first_at": incident.first_at.isoformat(),
        "last_at": incident.last_at.isoformat(),
        "report_count": incident.report_count,
        "max_depth_cm": incident.max_depth_cm,
        "representative_text": incident.representative_text,
        "state": incident.state,
        "assignee_id": incident.assignee_id,
        "notes": incident.notes,
        "alert_id": incident.alert_id,
    }


EXPORT_COLUMNS = (
    "id",
    "source",
    "received_at",
    "hazard",
    "hazard_confidence",
    "depth_cm",
    "severity",
    "lat",
    "lon",
    "admin_code",
    "kecamatan_code",
    "geocode_method",
    "state",
    "incident_id",
    "duplicate_of_id",
    "text",
)


def export_geojson(reports: Sequence[Report], incidents: Sequence[Incident]) -> dict[str, Any]:
    """A FeatureCollection: located reports (kind=report) and incidents (kind=incident) as points."""
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [r.lon, r.lat]},
            "properties": {"kind": "report", **report_summary(r)},
        }
        for r in reports
        if r.lat is not None and r.lon is not None
    ]
    features += [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [i.lon, i.lat]},
            "properties": {"kind": "incident", **incident_summary(i)},
        }
        for i in incidents
    ]
    return {"type": "FeatureCollection", "features": features}


def export_csv(reports: Sequence[Report]) -> str:
    """Reports as CSV (one row each, the columns of EXPORT_COLUMNS); text that a spreadsheet would run as a
    formula is neutralised (broadcast.csvexport)."""
    rows = (report_summary(r) for r in reports)
    return csvexport.to_csv(EXPORT_COLUMNS, ([row[c] for c in EXPORT_COLUMNS] for row in rows))

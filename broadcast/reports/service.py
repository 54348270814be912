"""Incoming reports: store the raw payload first, exactly once per provider message, without phone numbers."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from shapely.geometry import Point
from sqlalchemy import Select, false, func, or_, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from broadcast import csvexport
from broadcast.audit import service as audit
from broadcast.authority import Action as Can
from broadcast.authority import Actor, Target, may, require
from broadcast.db import utcnow
from broadcast.errors import Invalid, InvalidTransition, NotFound
from broadcast.reports import rules
from broadcast.reports.models import Incident, PollCheckpoint, Report
from channels.base import InboundEvent
from geo import gazetteer, placenames
from templates import i18n

if TYPE_CHECKING:
    from broadcast.alerts.models import Alert
    from broadcast.users.models import User

# Form fields that carry the sender's own number; stored only as the keyed hash.
PHONE_FIELDS = ("From",)


def author_hash(key: bytes, phone: str) -> str:
    """A keyed SHA-256 of a phone number: the same sender links their reports, the number is never stored."""
    return hmac.new(key, phone.encode(), hashlib.sha256).hexdigest()


def find_report(session: Session, *, source: str, external_id: str) -> Report | None:
    """The report a provider message became, or None."""
    return session.scalar(select(Report).where(Report.source == source, Report.external_id == external_id))


def store_inbound(
    session: Session, *, source: str, external_id: str, raw: Mapping[str, object], author: str
) -> tuple[Report, bool]:
    """Store a provider's raw payload once (the sender's number replaced by `author`, their hash).

    Returns the report and whether it is new; a second delivery of the same message returns the first row.
    """
    existing = find_report(session, source=source, external_id=external_id)
    if existing is not None:
        return existing, False
    payload = {k: (f"hmac:{author}" if k in PHONE_FIELDS else v) for k, v in raw.items()}
    report = Report(source=source, external_id=external_id, raw=payload, author_hash=author, state="new")
    try:
        with session.begin_nested():
            session.add(report)
            session.flush()
    except IntegrityError:
        # A concurrent delivery of the same webhook stored it first.
        found = find_report(session, source=source, external_id=external_id)
        if found is None:
            raise
        return found, False
    return report, True


def find_checkpoint(session: Session, *, name: str) -> PollCheckpoint | None:
    """The saved state named `name` (a poller's position, an SMS sender's pending choice), if any."""
    return session.get(PollCheckpoint, name)


def get_checkpoint(session: Session, *, name: str) -> str | None:
    """The value a poller saved under `name`, or None on its first run."""
    row = find_checkpoint(session, name=name)
    return row.value if row else None


def set_checkpoint(session: Session, *, name: str, value: str) -> None:
    """Save a poller's position; committed with the reports it covers, so neither runs ahead of the other."""
    row = session.get(PollCheckpoint, name)
    if row is None:
        session.add(PollCheckpoint(name=name, value=value))
    else:
        row.value = value
    session.flush()


def store_x_post(session: Session, *, event: InboundEvent, account: str, author_key: bytes) -> tuple[Report, bool]:
    """A post that mentions an agency account, stored once as a new report (the author only as a keyed hash,
    coordinates when the post carries them; place names are left for the report pipeline)."""
    tweet = dict(event.raw.get("tweet") or {})  # type: ignore[call-overload]
    raw = {"account": account, "tweet": tweet, "author_id": tweet.get("author_id")}
    report, new = store_inbound(
        session, source="x", external_id=event.external_id, raw=raw, author=author_hash(author_key, event.sender)
    )
    if new:
        report.text = event.text
        created = tweet.get("created_at")
        if isinstance(created, str):
            report.received_at = datetime.fromisoformat(created.replace("Z", "+00:00"))
        coordinates = (tweet.get("geo") or {}).get("coordinates") or {}
        if coordinates.get("type") == "Point":
            report.lon, report.lat = coordinates["coordinates"][:2]
        session.flush()
    return report, new


def ingest_x_mentions(session: Session, *, client: object, account: str, user_id: str, author_key: bytes) -> int:
    """Poll one account's mentions from its checkpoint and store each new one; returns how many were new.

    Raises: the channel's errors (RateLimited, ChannelUnavailable) with nothing stored or moved forward.
    """
    from channels.social import poll_mentions

    name = f"x-mentions:{user_id}"
    poll = poll_mentions(client, user_id, get_checkpoint(session, name=name))
    new = 0
    for event in poll.events:
        new += store_x_post(session, event=event, account=account, author_key=author_key)[1]
    if poll.since_id:
        set_checkpoint(session, name=name, value=poll.since_id)
    return new


def ingest_x_search(session: Session, *, client: object, query: str, author_key: bytes) -> int:
    """Run the configured keyword search from its checkpoint and store each new post as a report.

    Raises: the channel's errors with nothing stored or moved forward.
    """
    from channels.social import poll_search

    name = "x-search:" + hashlib.sha256(query.encode()).hexdigest()[:16]
    poll = poll_search(client, query, get_checkpoint(session, name=name))
    new = 0
    for event in poll.events:
        new += store_x_post(session, event=event, account=f"search:{query}", author_key=author_key)[1]
    if poll.since_id:
        set_checkpoint(session, name=name, value=poll.since_id)
    return new


# ---------------------------------------------------------------------------------------------------------------
# One intake for every source: the raw payload is stored in one INSERT, enrichment happens later in Celery.

MAX_TEXT = 4000
MAX_MEDIA = 10


class ReportNotFound(NotFound):
    code = "report-not-found"


class IncidentNotFound(NotFound):
    code = "incident-not-found"


class InvalidReport(Invalid):
    code = "invalid-report"


def check_coordinates(lat: float | None, lon: float | None) -> None:
    """Both or neither, and on the globe.

    Raises: InvalidReport.
    """
    if (lat is None) != (lon is None):
        raise InvalidReport("Lintang dan bujur harus diisi keduanya / give both lat and lon, or neither")
    if lat is not None and lon is not None and not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise InvalidReport("Koordinat di luar jangkauan / coordinates out of range")


EXTERNAL_ID_MAX = 128
# A partner's clock may run a little ahead of ours; more than this is not a clock, it is a wrong date.
MAX_CLOCK_SKEW = timedelta(minutes=5)


def storable_external_id(external_id: str) -> str:
    """The id as stored (at most EXTERNAL_ID_MAX characters): unchanged when it fits, otherwise its start and a
    SHA-256 of the whole, so two long ids that differ anywhere stay two reports (never cut into one)."""
    if len(external_id) <= EXTERNAL_ID_MAX:
        return external_id
    digest = hashlib.sha256(external_id.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{external_id[: EXTERNAL_ID_MAX - len(digest) - 1]}#{digest}"


def intake_values(
    *,
    source: str,
    external_id: str,
    raw: Mapping[str, object],
    text: str,
    author: str | None,
    lat: float | None = None,
    lon: float | None = None,
    media: Sequence[str] = (),
    received_at: datetime | None = None,
    language: str | None = None,
    hazard: str | None = None,
    admin_code: str | None = None,
    depth_cm: int | None = None,
) -> dict[str, Any]:
    """The row a report becomes at intake: its raw payload and normalised fields, pending enrichment.

    Raises: InvalidReport (unknown source, bad coordinates).
    """
    if source not in rules.SOURCES:
        raise InvalidReport(f"Sumber tidak dikenal / unknown source {source!r}")
    check_coordinates(lat, lon)
    now = utcnow()
    when = received_at if received_at is None or received_at.tzinfo else received_at.replace(tzinfo=UTC)
    if when is not None and when > now + MAX_CLOCK_SKEW:
        raise InvalidReport(
            "Waktu kejadian di masa depan / occurred_at is in the future (a report cannot come from the future; it "
            "would stay on top of every recent list)"
        )
    return {
        "source": source,
        "external_id": storable_external_id(external_id),
        "raw": dict(raw),
        "text": text.strip()[:MAX_TEXT],
        "author_hash": author,
        "language": language,
        "lat": lat,
        "lon": lon,
        "media": list(media)[:MAX_MEDIA],
        "hazard": hazard if hazard in rules.HAZARD_RULES else None,
        "admin_code": admin_code,
        "depth_cm": depth_cm,
        "state": "new",
        "processing": "pending",
        "attempts": 0,
        "received_at": received_at or now,
        "place_names": [],
        "alert_ids": [],
    }


def store_many(session: Session, rows: Sequence[dict[str, Any]]) -> list[tuple[int, bool]]:
    """Store intake rows in one multi-row INSERT; per row (report id, created). A (source, external_id) already
    stored, or repeated within the batch, stores nothing new and gives the first row's id."""
    if not rows:
        return []
    if session.get_bind().dialect.name == "postgresql":
        inserted = _insert_recordset(session, rows)
    else:
        stmt = (
            sqlite_insert(Report)
            .values(list(rows))
            .on_conflict_do_nothing(index_elements=["source", "external_id"])
            .returning(Report.id, Report.source, Report.external_id)
        )
        inserted = {(src, ext): int(rid) for rid, src, ext in session.execute(stmt).all()}
    keys = [(r["source"], r["external_id"]) for r in rows]
    missing = {k for k in keys if k not in inserted}
    existing: dict[tuple[str, str], int] = {}
    if missing:
        found = session.execute(
            select(Report.id, Report.source, Report.external_id).where(
                Report.external_id.in_([ext for _, ext in missing])
            )
        )
        existing = {(src, ext): int(rid) for rid, src, ext in found if (src, ext) in missing}
    out: list[tuple[int, bool]] = []
    claimed: set[tuple[str, str]] = set()
    for key in keys:
        if key in inserted and key not in claimed:
            claimed.add(key)
            out.append((inserted[key], True))
        else:
            out.append((inserted.get(key) or existing[key], False))
    return out


# PostgreSQL intake: one statement text whatever the batch size, the whole batch as one JSON parameter read back
# as rows by json_to_recordset. psycopg parses the statement once and prepares it on the server; Python only
# serialises the batch (C json encoder), instead of SQLAlchemy compiling and psycopg re-parsing a multi-row
# VALUES statement of a new shape, with one bound parameter per value, for every batch.
_RECORDSET_COLUMNS: tuple[tuple[str, str], ...] = (
    ("source", "text"),
    ("external_id", "text"),
    ("raw", "json"),
    ("text", "text"),
    ("author_hash", "text"),
    ("language", "text"),
    ("lat", "float8"),
    ("lon", "float8"),
    ("media", "json"),
    ("hazard", "text"),
    ("admin_code", "text"),
    ("depth_cm", "int"),
    ("state", "text"),
    ("processing", "text"),
    ("attempts", "int"),
    ("received_at", "timestamptz"),
    ("place_names", "json"),
    ("alert_ids", "json"),
)
_RECORDSET_INSERT = (
    f"INSERT INTO reports ({', '.join(name for name, _ in _RECORDSET_COLUMNS)}) "  # noqa: S608 (constant names)
    f"SELECT {', '.join(name for name, _ in _RECORDSET_COLUMNS)} FROM json_to_recordset(%s::json) "
    f"AS t({', '.join(f'{name} {kind}' for name, kind in _RECORDSET_COLUMNS)}) "
    "ON CONFLICT (source, external_id) DO NOTHING RETURNING id, source, external_id"
)


def _insert_recordset(session: Session, rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str], int]:
    """PostgreSQL: insert the rows (skipping stored keys); the new rows' ids by (source, external_id)."""
    batch = json.dumps(
        [{**row, "received_at": row["received_at"].astimezone(UTC).isoformat()} for row in rows],
        ensure_ascii=False,
        allow_nan=False,
    )
    result = session.connection().exec_driver_sql(_RECORDSET_INSERT, (batch,))
    return {(src, ext): int(rid) for rid, src, ext in result.all()}


def intake(session: Session, **fields: Any) -> tuple[int, bool]:
    """Store one report (raw payload and normalised fields, one INSERT), pending enrichment.

    Returns (report id, created); the same (source, external_id) twice stores nothing new.
    Raises: InvalidReport (unknown source, bad coordinates).
    """
    return store_many(session, [intake_values(**fields)])[0]


def get_report(session: Session, *, report_id: int) -> Report:
    """The report with this id.

    Raises: ReportNotFound.
    """
    report = session.get(Report, report_id)
    if report is None:
        raise ReportNotFound(f"Laporan {report_id} tidak ditemukan / report not found")
    return report


def get_incident(session: Session, *, incident_id: int) -> Incident:
    """The incident with this id.

    Raises: IncidentNotFound.
    """
    incident = session.get(Incident, incident_id)
    if incident is None:
        raise IncidentNotFound(f"Kejadian {incident_id} tidak ditemukan / incident not found")
    return incident


# ---------------------------------------------------------------------------------------------------------------
# Triage


def report_target(report: Report | Incident) -> Target:
    """The authority target of a report or incident: its admin code, else its point; unlocated when neither."""
    code = report.admin_code or report.kecamatan_code
    point = None if code or report.lat is None or report.lon is None else Point(report.lon, report.lat)
    return Target.area([code], [point], located=bool(code or point), label=f"report {report.id}")


def get_report_for(session: Session, *, report_id: int, actor: Actor) -> Report:
    """A report, for staff whose jurisdiction covers it.

    Raises: ReportNotFound, RoleNotAllowed, OutsideJurisdiction.
    """
    report = get_report(session, report_id=report_id)
    require(actor, Can.REPORT_READ, report_target(report))
    return report


def get_incident_for(session: Session, *, incident_id: int, actor: Actor) -> Incident:
    """An incident, for staff whose jurisdiction covers it.

    Raises: IncidentNotFound, RoleNotAllowed, OutsideJurisdiction.
    """
    incident = get_incident(session, incident_id=incident_id)
    require(actor, Can.REPORT_READ, report_target(incident))
    return incident


def scoped(actor: Actor, flt: ReportFilter) -> ReportFilter:
    """The filter limited to what `actor` may read: reports and incidents located inside their jurisdiction
    (national staff: everything).

    Raises: RoleNotAllowed.
    """
    require(actor, Can.REPORT_READ, Target())
    return replace(flt, within=actor.jurisdiction, national=actor.jurisdiction is None)


def set_state(session: Session, *, report_id: int, state: str, actor: Actor, note: str | None = None) -> Report:
    """Move a report through triage (new → verified / dismissed / actioned), audited. The one place a report's
    state changes, so follow-ups (e.g. replying to the reporter) hook in here; only staff whose jurisdiction
    covers the report may (the reporter may get an SMS).

    Raises: ReportNotFound, InvalidTransition, RoleNotAllowed, OutsideJurisdiction.
    """
    report = get_report(session, report_id=report_id)
    require(actor, Can.REPORT_TRIAGE, report_target(report))
    actor_id = actor.id
    if state not in rules.TRANSITIONS.get(report.state, frozenset()):
        raise InvalidTransition(
            f"Laporan {report.id}: {report.state} → {state} tidak diizinkan / not allowed "
            f"(allowed: {', '.join(sorted(rules.TRANSITIONS.get(report.state, ()))) or 'none'})"
        )
    before = {"state": report.state, "notes": report.notes}
    report.state = state
    if note:
        report.notes = f"{report.notes}\n{note}" if report.notes else note
    audit.record(
        session,
        actor_id=actor_id,
        action="report.state",
        subject_type="report",
        subject_id=report.id,
        before=before,
        after={"state": report.state, "notes": report.notes},
    )
    if state in ("verified", "actioned"):
        # Close the loop: the citizen hears back on the channel the report came from (opt-outs respected); the
        # reply is sent after the commit (its ReplyQueued event).
        from broadcast.trust import service as trust

        trust.notify_reporter(session, report, state)
    session.flush()
    return report


def update_triage(
    session: Session, *, report_id: int, actor: Actor, assignee_id: int | None, note: str | None
) -> Report:
    """Assign a report (None clears) and append a note, audited; inside the actor's jurisdiction.

    Raises: ReportNotFound, RoleNotAllowed, OutsideJurisdiction.
    """
    report = get_report(session, report_id=report_id)
    require(actor, Can.REPORT_TRIAGE, report_target(report))
    actor_id = actor.id
    before = {"assignee_id": report.assignee_id, "notes": report.notes}
    report.assignee_id = assignee_id
    if note:
        report.notes = f"{report.notes}\n{note}" if report.notes else note
    audit.record(
        session,
        actor_id=actor_id,
        action="report.triage",
        subject_type="report",
        subject_id=report.id,
        before=before,
        after={"assignee_id": report.assignee_id, "notes": report.notes},
    )
    session.flush()
    return report


def set_incident_state(
    session: Session, *, incident_id: int, state: str, actor: Actor, note: str | None = None
) -> Incident:
    """Triage an incident and, through set_state, each of its reports that may make the same move and that the
    actor's jurisdiction covers; audited.

    Raises: IncidentNotFound, InvalidTransition, RoleNotAllowed, OutsideJurisdiction.
    """
    incident = get_incident(session, incident_id=incident_id)
    require(actor, Can.INCIDENT_TRIAGE, report_target(incident))
    actor_id = actor.id
    if state not in rules.TRANSITIONS.get(incident.state, frozenset()):
        raise InvalidTransition(
            f"Kejadian {incident.id}: {incident.state} → {state} tidak diizinkan / not allowed",
            code="invalid-incident-transition",
        )
    before = {"state": incident.state, "notes": incident.notes}
    incident.state = state
    if note:
        incident.notes = f"{incident.notes}\n{note}" if incident.notes else note
    audit.record(
        session,
        actor_id=actor_id,
        action="incident.state",
        subject_type="incident",
        subject_id=incident.id,
        before=before,
        after={"state": incident.state, "notes": incident.notes},
    )
    members = session.scalars(select(Report).where(Report.incident_id == incident.id).order_by(Report.id))
    for member in list(members):
        allowed = may(actor, Can.REPORT_TRIAGE, report_target(member)).allowed
        if allowed and state in rules.TRANSITIONS.get(member.state, frozenset()):
            set_state(session, report_id=member.id, state=state, actor=actor, note=f"kejadian #{incident.id}")
    incident.updated_at = utcnow()
    session.flush()
    return incident


def update_incident_triage(
    session: Session, *, incident_id: int, actor: Actor, assignee_id: int | None, note: str | None
) -> Incident:
    """Assign an incident and append a note, audited; inside the actor's jurisdiction.

    Raises: IncidentNotFound, RoleNotAllowed, OutsideJurisdiction.
    """
    incident = get_incident(session, incident_id=incident_id)
    require(actor, Can.INCIDENT_TRIAGE, report_target(incident))
    actor_id = actor.id
    before = {"assignee_id": incident.assignee_id, "notes": incident.notes}
    incident.assignee_id = assignee_id
    if note:
        incident.notes = f"{incident.notes}\n{note}" if incident.notes else note
    incident.updated_at = utcnow()
    audit.record(
        session,
        actor_id=actor_id,
        action="incident.triage",
        subject_type="incident",
        subject_id=incident.id,
        before=before,
        after={"assignee_id": incident.assignee_id, "notes": incident.notes},
    )
    session.flush()
    return incident


def incident_area_code(incident: Incident) -> str:
    """The area a draft alert for this incident targets: its kecamatan, else the most precise code it has.

    Raises: InvalidReport (the incident has no administrative area).
    """
    code = incident.kecamatan_code or incident.admin_code
    if not code:
        raise InvalidReport("Kejadian tanpa wilayah administrasi / incident has no administrative area")
    return code


def draft_alert_from_incident(session: Session, *, incident_id: int, actor: User, sender: str) -> Alert:
    """Write a draft alert for the incident's kecamatan from its hazard's template, in one step (it still needs
    submission and a second person's approval). Analysts, who may not author, get the system account as author.

    Raises: IncidentNotFound, InvalidReport (no template for the hazard, no area), OutsideJurisdiction.
    """
    from broadcast.alerts import hazards
    from broadcast.alerts import service as alerts
    from broadcast.alerts.rules import AUTHOR_ROLES
    from broadcast.alerts.schemas import AlertCreate, AreaIn
    from broadcast.users import service as users

    incident = get_incident(session, incident_id=incident_id)
    require(actor, Can.INCIDENT_DRAFT_ALERT, report_target(incident))
    template = rules.HAZARD_TEMPLATES.get(incident.hazard)
    if template is None:
        raise InvalidReport(f"Tidak ada templat untuk {incident.hazard} / no alert template for this hazard")
    code = incident_area_code(incident)
    place = gazetteer.find_place(code)
    area_name = placenames.describe(place) if place else code
    fields = {"lokasi": area_name}
    known = {f.name for f in hazards.get_hazard(template).fields}
    if incident.max_depth_cm and "ketinggian_air" in known:
        fields["ketinggian_air"] = f"{incident.max_depth_cm} cm"
    infos = hazards.render(template, {k: v for k, v in fields.items() if k in known})
    data = AlertCreate(
        status="Actual",
        channels=["sms", "social", "web"],
        note=f"Dari kejadian #{incident.id} ({incident.report_count} laporan warga) / from incident #{incident.id}",
        infos=infos,
        areas=[AreaIn(area_desc=area_name, geocodes=[code])],
    )
    author = actor if actor.role in {r.value for r in AUTHOR_ROLES} else users.system_user(session)
    alert = alerts.create_alert(session, data=data, author=author, sender=sender)
    before = {"alert_id": incident.alert_id, "state": incident.state}
    incident.alert_id = alert.id
    incident.updated_at = utcnow()
    audit.record(
        session,
        actor_id=actor.id,
        action="incident.draft_alert",
        subject_type="incident",
        subject_id=incident.id,
        before=before,
        after={"alert_id": alert.id, "state": incident.state},
    )
    session.flush()
    return alert


# ---------------------------------------------------------------------------------------------------------------
# Listing and export


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

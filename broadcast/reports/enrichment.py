"""Enrichment of stored reports (language, hazard, depth, place, near-duplicate, incident, alerts in force): one
report per transaction (`enrich`), or a claimed batch at once (`enrich_claimed`).

A batch gives the same rows as enriching its reports one by one in id order. It works in two steps:
1. without a transaction held: per report, keyword classification (every rule run once over the whole batch),
   depth, language and the text geoparser (with its caps); one vectorised point-in-polygon query per level
   for the reports that carry coordinates. A report that fails here gets its reason; the others go on.
2. in one transaction: near-duplicates and incidents decided report by report in id order against the rows
   read once for the batch (what each decision changes is applied in memory before the next one), the alerts
   in force read once, new incidents inserted, and one bulk UPDATE of the reports.
Step 2 holds a lock on PostgreSQL (SQLite serialises writers anyway) and first checks that the batch is still
this run's claim (state `working`, same lease), so a report is enriched once even when a run is redelivered or
its lease ran out and another run claimed it. When step 2 fails, the batch is enriched one report per
transaction instead, so only a report that cannot be written fails.
"""

from __future__ import annotations

import bisect
import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol, cast

import numpy as np
from rapidfuzz import fuzz, process
from sqlalchemy import ColumnElement, Engine, Table, and_, bindparam, func, insert, or_, select, text, update
from sqlalchemy.orm import Session

from broadcast.db import session_scope, utcnow
from broadcast.reports import rules
from broadcast.reports.models import AWAITING_LOCATION, Incident, Report
from broadcast.reports.triage import get_report
from geo import boundaries, geoparse

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
LEASE = timedelta(minutes=5)
# Deduplication and clustering read what earlier enrichments wrote: on PostgreSQL one transaction at a time holds
# this advisory lock for that part, so two workers never start two incidents for one place or overwrite each
# other's incident counts. The CPU-heavy first step of a batch runs outside it, in parallel.
CLUSTER_LOCK = 0x62726F6164636173  # "broadcas"
DUPLICATE_CANDIDATES = 50


def _held_until(now: datetime) -> ColumnElement[bool]:
    """A report held for its sender's location whose window has passed: enriched as it is."""
    return and_(Report.processing == AWAITING_LOCATION, Report.lease_until <= now)


def _claimable(now: datetime) -> ColumnElement[bool]:
    return or_(
        Report.processing == "pending",
        _held_until(now),
        and_(Report.processing == "failed", Report.attempts < MAX_ATTEMPTS, Report.lease_until <= now),
        and_(Report.processing == "working", Report.lease_until <= now),
    )


def claim_pending(session: Session, *, limit: int = 100, now: datetime | None = None) -> list[int]:
    """Lease up to `limit` reports that need enrichment (new, failed and due for a retry, or left by a dead
    worker), oldest first; each id is claimed by exactly one caller."""
    now = now or utcnow()
    pick = select(Report.id).where(_claimable(now)).order_by(Report.id).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    # Two statements: PostgreSQL may run a LIMIT ... SKIP LOCKED subquery inside an UPDATE more than once and
    # then claim more than `limit` rows.
    ids = list(session.scalars(pick))
    if not ids:
        return []
    stmt = (
        update(Report)
        .where(Report.id.in_(ids), _claimable(now))
        .values(processing="working", lease_until=now + LEASE)
        .returning(Report.id)
        .execution_options(synchronize_session=False)
    )
    return sorted(int(i) for i in session.scalars(stmt))


@dataclass(frozen=True, slots=True)
class Claim:
    """Reports leased by one run, and the lease that proves they are still its own."""

    ids: tuple[int, ...]
    lease_until: datetime


def claim_batch(session: Session, *, limit: int, now: datetime | None = None) -> Claim:
    """Lease up to `limit` reports for one batch (see claim_pending)."""
    now = now or utcnow()
    return Claim(tuple(claim_pending(session, limit=limit, now=now)), now + LEASE)


def count_pending(session: Session, *, now: datetime | None = None) -> int:
    """Reports still waiting for enrichment (pending, working, failed with retries left, or held for a location
    that did not come in time)."""
    now = now or utcnow()
    return int(
        session.scalar(
            select(func.count())
            .select_from(Report)
            .where(
                or_(
                    Report.processing.in_(("pending", "working")),
                    and_(Report.processing == "failed", Report.attempts < MAX_ATTEMPTS),
                    _held_until(now),
                )
            )
        )
        or 0
    )


def mark_failed(session: Session, *, report_id: int, error: str, now: datetime | None = None) -> Report:
    """Record a failed enrichment: the raw report stays, the error is shown and a retry is due after a backoff."""
    now = now or utcnow()
    report = get_report(session, report_id=report_id)
    report.attempts += 1
    report.processing = "failed"
    report.last_error = error[:2000]
    report.lease_until = now + timedelta(seconds=min(2**report.attempts, 300))
    session.flush()
    return report


def release(session: Session, *, claim: Claim, ids: Iterable[int]) -> int:
    """Give claimed reports back (pending again, no lease) so another run takes them at once; returns how many."""
    claimed = set(claim.ids)
    wanted = [i for i in ids if i in claimed]
    if not wanted:
        return 0
    result = session.execute(
        update(Report)
        .where(Report.id.in_(wanted), Report.processing == "working", Report.lease_until == claim.lease_until)
        .values(processing="pending", lease_until=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def _own(session: Session, claim: Claim) -> set[int]:
    """The claim's reports that are still its own. Called under the clustering lock: on PostgreSQL that lock
    serialises every enrichment's writes (another run that re-claims a report after its lease ran out finds it
    done, or we find it re-claimed); on SQLite a no-op UPDATE takes the database's write lock."""
    mine = and_(Report.id.in_(claim.ids), Report.processing == "working", Report.lease_until == claim.lease_until)
    if session.get_bind().dialect.name == "postgresql":
        return set(session.scalars(select(Report.id).where(mine)))
    touch = update(Report).where(mine).values(lease_until=claim.lease_until).returning(Report.id)
    return set(session.scalars(touch.execution_options(synchronize_session=False)))


def _lock_clustering(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CLUSTER_LOCK})


# ---------------------------------------------------------------------------------------------------------------
# Per report: what the text and the coordinates say (no database)


@lru_cache(maxsize=4096)
def _point_for(code: str) -> tuple[float, float] | None:
    found = boundaries.nearest_geometry(code)
    if found is None:
        return None
    point = found[1].point_on_surface()
    return point.y, point.x


class _Routed(Protocol):
    source: str
    raw: dict[str, object]


def arrival_jurisdiction(report: _Routed, channel_areas: Mapping[str, str] | None) -> str | None:
    """The area of the channel a report arrived through, when the channel belongs to one agency: an X mention
    of a regional account (`channel_areas`: handle → Kemendagri code); None otherwise."""
    if not channel_areas or report.source != "x":
        return None
    account = str((report.raw or {}).get("account") or "").lstrip("@").lower()
    return channel_areas.get(account) or None


def geocode(
    report: Report,
    *,
    within: str | None,
    channel_areas: Mapping[str, str] | None = None,
    codes: Mapping[str, str | None] | None = None,
) -> None:
    """Where a report is: its coordinates (admin codes from the boundaries), else place names in its text,
    else the sender's registered area (the admin_code set at intake). Same-name places in the text are told
    apart by the other places named, the sender's registered area, then the jurisdiction the report arrived
    through (`channel_areas`); `geocode_reason` says why. `codes`: the boundaries' codes at the report's
    coordinates when the caller already looked them up (boundaries.locate's answer)."""
    # The registered area is the admin_code intake set; after a first geocoding it is our own answer.
    registered = report.admin_code if report.geocode_method in (None, "subscriber") else None
    parsed = geoparse.parse_location(
        report.text or "",
        within=within,
        registered=registered,
        jurisdiction=arrival_jurisdiction(report, channel_areas),
    )
    report.street = parsed.street
    report.rw = parsed.rw
    report.place_names = parsed.names
    report.geocode_reason = parsed.reason or None
    if report.lat is not None and report.lon is not None:
        if codes is None:
            codes = boundaries.locate(report.lon, report.lat)
        report.kecamatan_code = codes["kecamatan"]
        report.admin_code = codes["desa_kelurahan"] or codes["kecamatan"] or codes["kabupaten_kota"]
        report.geocode_method = "coordinates"
        report.geocode_reason = "koordinat laporan / the report's coordinates"
        return
    if parsed.place is not None:
        report.admin_code = parsed.place.kode
        report.kecamatan_code = parsed.kecamatan
        report.geocode_method = "text"
    elif registered:
        report.admin_code = registered
        report.kecamatan_code = registered[:8] if registered.count(".") >= 2 else None
        report.geocode_method = "subscriber"
        report.geocode_reason = (
            f"{parsed.reason + ' — ' if parsed.reason else ''}"
            f"wilayah terdaftar pengirim {registered} / the sender's registered area {registered}"
        )
    else:
        report.geocode_method = "none"
        return
    point = _point_for(report.admin_code)
    if point is not None:
        report.lat, report.lon = point


def annotate(
    report: Report,
    *,
    guess: rules.HazardGuess,
    within: str | None,
    channel_areas: Mapping[str, str] | None = None,
    codes: Mapping[str, str | None] | None = None,
) -> None:
    """What a report says on its own: language, hazard (`guess`, its keyword classification) and confidence, depth
    and severity, place. No database."""
    text = report.text or ""
    report.language = report.language or rules.detect_language(text)
    if guess.hazard is not None:
        report.hazard, report.hazard_confidence = guess.hazard, guess.confidence
    elif report.hazard is not None:
        report.hazard_confidence = 0.5  # the source said so (a flood-only platform, a partner's category)
    # Depth said in the text wins over a depth the source gave as a field (kept when the text says none).
    report.depth_cm = rules.depth_cm(text) or report.depth_cm
    report.severity = rules.severity_for(report.depth_cm)
    geocode(report, within=within, channel_areas=channel_areas, codes=codes)


def locate_many(points: Sequence[tuple[float, float]]) -> list[dict[str, str | None]]:
    """boundaries.locate for many (lon, lat) points: one vectorised query per level."""
    if not points:
        return []
    lon = np.array([p[0] for p in points], dtype=float)
    lat = np.array([p[1] for p in points], dtype=float)
    per_level = {level: boundaries.codes_at(lon, lat, level) for level in boundaries.LEVELS}
    return [{level: str(codes[i]) or None for level, codes in per_level.items()} for i in range(len(points))]


# ---------------------------------------------------------------------------------------------------------------
# One report per transaction


def _find_duplicate(session: Session, report: Report) -> Report | None:
    if not report.author_hash:
        return None
    stmt = (
        select(Report)
        .where(
            Report.author_hash == report.author_hash,
            Report.id != report.id,
            Report.processing == "done",
            Report.duplicate_of_id.is_(None),
            Report.received_at >= report.received_at - rules.DUPLICATE_WINDOW,
            Report.received_at <= report.received_at + rules.DUPLICATE_WINDOW,
        )
        .order_by(Report.id)
        .limit(DUPLICATE_CANDIDATES)
    )
    return next((r for r in session.scalars(stmt) if rules.is_near_duplicate(r.text, report.text)), None)


def representative(texts: Sequence[str]) -> str:
    """The text that speaks for an incident (newest first in `texts`): the one agreeing most with the others,
    discounted for texts too short to say much."""
    texts = [t for t in texts if t.strip()]
    if not texts:
        return ""
    if len(texts) <= 2:
        return max(texts, key=len)
    normalised = [rules.normalise_text(t) for t in texts]
    scores = process.cdist(normalised, normalised, scorer=fuzz.token_set_ratio)
    # Agreement with the others, discounted for texts too short to say much ("#cuacaekstrim").
    weight = [float(scores[i].sum()) * min(1.0, len(normalised[i]) / 40) for i in range(len(texts))]
    best = max(range(len(texts)), key=lambda i: (weight[i], len(texts[i])))
    return texts[best]


REPRESENTATIVE_FROM = 30  # the representative text is chosen among this many newest counted reports


class _IncidentLike(Protocol):
    hazard: str
    lat: float
    lon: float
    kecamatan_code: str | None
    street: str | None
    first_at: datetime
    last_at: datetime
    report_count: int
    max_depth_cm: int | None
    state: str


@dataclass(slots=True)
class _IncidentRow:
    """An incident's columns as a batch reads and changes them (no ORM: written back in bulk)."""

    id: int | None
    hazard: str
    lat: float
    lon: float
    admin_code: str | None
    kecamatan_code: str | None
    street: str | None
    first_at: datetime
    last_at: datetime
    report_count: int
    max_depth_cm: int | None
    representative_text: str
    state: str


_INCIDENT_COLUMNS = (
    "hazard",
    "lat",
    "lon",
    "admin_code",
    "kecamatan_code",
    "street",
    "first_at",
    "last_at",
    "report_count",
    "max_depth_cm",
    "representative_text",
    "state",
)


def _apply_extent(incident: _IncidentLike, extent: rules.IncidentExtent) -> None:
    incident.report_count = extent.count
    if extent.lat is not None and extent.lon is not None:
        incident.lat, incident.lon = extent.lat, extent.lon
    if extent.count and extent.first_at is not None and extent.last_at is not None:
        incident.first_at, incident.last_at = extent.first_at, extent.last_at
        incident.max_depth_cm = extent.max_depth_cm


def refresh_incident(session: Session, incident: Incident) -> Incident:
    """Recount an incident from its reports (duplicates not counted): count, centre, time span, deepest water,
    and the representative text among the latest 30."""
    session.flush()
    members = and_(Report.incident_id == incident.id, Report.duplicate_of_id.is_(None))
    rows = session.execute(select(Report.lat, Report.lon, Report.received_at, Report.depth_cm).where(members)).all()
    extent = rules.incident_extent([(r[0], r[1]) for r in rows], [r[2] for r in rows], [r[3] for r in rows])
    _apply_extent(incident, extent)
    if extent.count:
        newest = select(Report.text).where(members).order_by(Report.id.desc()).limit(REPRESENTATIVE_FROM)
        incident.representative_text = representative(list(session.scalars(newest)))
    incident.updated_at = utcnow()
    session.flush()
    return incident


def _near(report: Report) -> ColumnElement[bool]:
    return or_(
        and_(func.abs(Incident.lat - report.lat) < 0.02, func.abs(Incident.lon - report.lon) < 0.02),
        and_(Incident.street == report.street, Incident.kecamatan_code == report.kecamatan_code),
    )


def _related_hazards(hazard: str) -> tuple[str, ...]:
    return ("banjir", "genangan") if hazard in ("banjir", "genangan") else (hazard,)


def _new_incident(report: Report) -> Incident:
    assert report.hazard is not None and report.lat is not None and report.lon is not None
    return Incident(
        hazard=report.hazard,
        lat=report.lat,
        lon=report.lon,
        admin_code=report.admin_code,
        kecamatan_code=report.kecamatan_code,
        street=report.street,
        first_at=report.received_at,
        last_at=report.received_at,
        report_count=0,
        representative_text=report.text,
        state="new",
    )


def _distance_to(report: Report, incident: _IncidentLike) -> float | None:
    assert report.hazard is not None and report.lat is not None and report.lon is not None
    return rules.same_incident(
        hazard=report.hazard,
        lat=report.lat,
        lon=report.lon,
        at=report.received_at,
        street=report.street,
        kecamatan=report.kecamatan_code,
        incident_hazard=incident.hazard,
        incident_lat=incident.lat,
        incident_lon=incident.lon,
        incident_last_at=incident.last_at,
        incident_street=incident.street,
        incident_kecamatan=incident.kecamatan_code,
    )


def cluster(session: Session, report: Report) -> Incident | None:
    """Put a located report with a hazard into the nearest open incident it belongs to (the oldest of equally
    near ones), or start one."""
    if report.hazard is None or report.lat is None or report.lon is None:
        return None
    window = rules.CLUSTER_WINDOW
    stmt = (
        select(Incident)
        .where(
            Incident.hazard.in_(_related_hazards(report.hazard)),
            Incident.last_at >= report.received_at - window,
            Incident.first_at <= report.received_at + window,
            Incident.state != "dismissed",
            _near(report),
        )
        .order_by(Incident.id)
    )
    best: tuple[float, Incident] | None = None
    for incident in session.scalars(stmt):
        d = _distance_to(report, incident)
        if d is not None and (best is None or d < best[0]):
            best = (d, incident)
    if best is None:
        incident = _new_incident(report)
        session.add(incident)
        session.flush()
    else:
        incident = best[1]
    report.incident_id = incident.id
    session.flush()
    return refresh_incident(session, incident)


def enrich(
    session: Session,
    *,
    report_id: int,
    within: str | None = None,
    channel_areas: Mapping[str, str] | None = None,
) -> Report:
    """Normalise and enrich one report: language, hazard and confidence, depth and severity, location,
    near-duplicate of the same author, incident, and the active alerts covering it. `within` limits the
    geoparser to a region; `channel_areas` (X handle → code) tells the area a report arrived through.

    Raises: ReportNotFound.
    """
    from broadcast.alerts import service as alerts

    report = get_report(session, report_id=report_id)
    if report.command is not None:
        report.processing = "skipped"
        session.flush()
        return report
    annotate(report, guess=rules.classify_hazard(report.text or ""), within=within, channel_areas=channel_areas)
    _lock_clustering(session)
    duplicate = _find_duplicate(session, report)
    if duplicate is not None:
        report.duplicate_of_id = duplicate.id
        report.incident_id = duplicate.incident_id
    else:
        cluster(session, report)
    code = report.admin_code or report.kecamatan_code
    report.alert_ids = [a.id for a in alerts.current_for_area(session, code=code, limit=5)] if code else []
    report.processing = "done"
    report.enriched_at = utcnow()
    report.last_error = None
    report.lease_until = None
    session.flush()
    return report


# ---------------------------------------------------------------------------------------------------------------
# A claimed batch


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What a run did with a claim: enriched (skipped commands included), failed, and no longer its own."""

    done: int = 0
    failed: int = 0
    lost: int = 0

    def __add__(self, other: BatchResult) -> BatchResult:
        return BatchResult(self.done + other.done, self.failed + other.failed, self.lost + other.lost)


class Interrupted(Exception):
    """A stop exception (e.g. Celery's soft time limit) arrived during a batch; the work done so far is saved."""

    def __init__(self, result: BatchResult, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.result = result
        self.cause = cause


def _drop_connections(engine: Engine) -> None:
    """After a stop exception cut a statement short, the connection it ran on may be mid-command: start afresh."""
    engine.dispose()


def _stopped_by(exc: BaseException, stop: tuple[type[BaseException], ...]) -> BaseException | None:
    """The stop exception behind `exc` (its cause or context), if any."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return None
        if stop and isinstance(seen, stop):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def load_claimed(session: Session, *, claim: Claim) -> list[Report]:
    """The claim's reports that are still its own, in id order."""
    stmt = (
        select(Report)
        .where(
            Report.id.in_(claim.ids),
            Report.processing == "working",
            Report.lease_until == claim.lease_until,
        )
        .order_by(Report.id)
    )
    return list(session.scalars(stmt))


@dataclass(slots=True)
class Annotated:
    """Step 1 of a batch: the reports annotated (detached rows), commands to skip, failures with their reason."""

    reports: list[Report] = field(default_factory=list)
    commands: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    at: int | None = None  # the report being annotated (the one at hand when a stop exception arrives)


def annotate_batch(
    reports: Sequence[Report],
    *,
    within: str | None,
    channel_areas: Mapping[str, str] | None = None,
    stop: tuple[type[BaseException], ...] = (),
    out: Annotated | None = None,
) -> Annotated:
    """Step 1 for detached report rows (no database): one keyword pass over the batch, one point-in-polygon
    query per level, then each report annotated on its own; a report that fails gets its reason, the others go
    on. A `stop` exception is not a report's failure: it propagates (`out.at` says which report it stopped).
    """
    out = out if out is not None else Annotated()
    todo: list[Report] = []
    normalised: list[str] = []
    for report in reports:
        if report.command is not None:
            out.commands.append(report.id)
            continue
        out.at = report.id
        try:
            normalised.append(rules.normalise_text(report.text or ""))
        except stop:
            raise
        except Exception as exc:
            log.exception("report %s: enrichment failed", report.id)
            out.failed[report.id] = _error(exc)
            continue
        todo.append(report)
    out.at = None
    scores = rules.hazard_scores(normalised)
    located = [r for r in todo if r.lat is not None and r.lon is not None]
    codes = dict(zip((r.id for r in located), locate_many([(r.lon, r.lat) for r in located]), strict=True))  # type: ignore[misc]
    for report, score in zip(todo, scores, strict=True):
        out.at = report.id
        try:
            annotate(
                report,
                guess=rules.guess_hazard(score),
                within=within,
                channel_areas=channel_areas,
                codes=codes.get(report.id),
            )
        except stop:
            raise
        except Exception as exc:
            log.exception("report %s: enrichment failed", report.id)
            out.failed[report.id] = _error(exc)
            continue
        out.reports.append(report)
    out.at = None
    return out


@dataclass(slots=True)
class _Member:
    id: int
    lat: float | None
    lon: float | None
    at: datetime
    depth: int | None
    text: str | None = None  # batch members only; stored ones are read when the representative is chosen


@dataclass(slots=True)
class _Cluster:
    """An incident as the batch sees it: the row (new or stored), its counted members once read, and the order
    a query by id would list it in."""

    row: _IncidentRow
    key: tuple[int, int]
    members: list[_Member] | None = None
    joined: list[_Member] = field(default_factory=list)
    cell: tuple[int, int] = (0, 0)


# Incidents are found by a grid of cells a little larger than the "near" box of `cluster` (0.02°), so every
# incident near a report is in the report's cell or one of the eight around it.
CELL_DEG = 0.025


def _cell(lat: float, lon: float) -> tuple[int, int]:
    return math.floor(lat / CELL_DEG), math.floor(lon / CELL_DEG)


@dataclass(slots=True)
class _Candidate:
    """A finished, not-duplicate report of one author that a later one may repeat."""

    id: int
    at: datetime
    text: str
    incident: _Cluster | int | None
    normalised: str | None = None  # normalise_text(text), once it was needed


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class _Batch:
    """Step 2's in-memory view: the rows one-by-one enrichment would query, read once, kept current."""

    def __init__(self, session: Session, reports: Sequence[Report]) -> None:
        self.session = session
        self.ids = [r.id for r in reports]
        self.by_author: dict[str, list[_Candidate]] = {}
        self.clusters: list[_Cluster] = []
        self.by_id: dict[int, _Cluster] = {}
        self._cells: dict[tuple[int, int], list[_Cluster]] = {}
        self._streets: dict[tuple[str | None, str | None], list[_Cluster]] = {}
        self._load_candidates(reports)
        self._load_incidents(reports)

    def _load_candidates(self, reports: Sequence[Report]) -> None:
        """Per report of the batch, the stored reports `_find_duplicate` would compare it with: the first
        DUPLICATE_CANDIDATES (by id) finished, not duplicate reports of its author within its window. The authors'
        reports are streamed in id order and a row is kept only while a window it falls in has room, so a prolific
        author costs at most that many kept rows per report."""
        authored = [r for r in reports if r.author_hash]
        if not authored:
            return
        window = rules.DUPLICATE_WINDOW
        room: dict[str, list[list[Any]]] = {}  # author → [from, to, rows counted] per distinct window
        for author_hash, received in sorted({(str(r.author_hash), r.received_at) for r in authored}):
            room.setdefault(author_hash, []).append([received - window, received + window, 0])
        rows = self.session.execute(
            select(Report.id, Report.author_hash, Report.received_at, Report.text, Report.incident_id)
            .where(
                Report.author_hash.in_(room),
                Report.processing == "done",
                Report.duplicate_of_id.is_(None),
                Report.received_at >= min(r.received_at for r in authored) - window,
                Report.received_at <= max(r.received_at for r in authored) + window,
                Report.id.not_in(self.ids),
            )
            .order_by(Report.id)
            .execution_options(yield_per=1000)
        )
        for rid, author, stored_at, text_, incident_id in rows:
            at = _aware(stored_at)
            needed = False
            for span in room[str(author)]:
                if span[0] <= at <= span[1] and span[2] < DUPLICATE_CANDIDATES:
                    span[2] += 1
                    needed = True
            if needed:
                self.by_author.setdefault(str(author), []).append(_Candidate(rid, at, text_, incident_id))

    def _load_incidents(self, reports: Sequence[Report]) -> None:
        placed = [r for r in reports if r.hazard is not None and r.lat is not None and r.lon is not None]
        if not placed:
            return
        window, margin = rules.CLUSTER_WINDOW, 0.03
        hazards = {h for r in placed if r.hazard for h in _related_hazards(r.hazard)}
        lats = [r.lat for r in placed if r.lat is not None]
        lons = [r.lon for r in placed if r.lon is not None]
        kecamatan = {r.kecamatan_code for r in placed if r.kecamatan_code}
        # Every incident a report of the batch may join: near one of them, or on a street of the same kecamatan.
        nearby = and_(
            Incident.lat > min(lats) - margin,
            Incident.lat < max(lats) + margin,
            Incident.lon > min(lons) - margin,
            Incident.lon < max(lons) + margin,
        )
        columns = [Incident.id, *(getattr(Incident, c) for c in _INCIDENT_COLUMNS)]
        stmt = (
            select(*columns)
            .where(
                Incident.hazard.in_(hazards),
                Incident.last_at >= min(r.received_at for r in placed) - window,
                Incident.first_at <= max(r.received_at for r in placed) + window,
                Incident.state != "dismissed",
                or_(nearby, Incident.kecamatan_code.in_(kecamatan)) if kecamatan else nearby,
            )
            .order_by(Incident.id)
        )
        for row in self.session.execute(stmt):
            incident = _IncidentRow(*row)
            incident.first_at, incident.last_at = _aware(incident.first_at), _aware(incident.last_at)
            c = _Cluster(incident, (0, row[0]))
            self._add(c)
            self.by_id[row[0]] = c
        # Read the members of the incidents the batch's reports would join as things stand, in one query; an
        # incident that only comes within reach as the batch moves it is read when a report joins it.
        likely = {c.key[1] for r in placed for c in self._candidates(r) if _distance_to(r, c.row) is not None}
        self._read_members(sorted(likely))

    def _add(self, c: _Cluster) -> None:
        self.clusters.append(c)
        c.cell = _cell(c.row.lat, c.row.lon)
        self._cells.setdefault(c.cell, []).append(c)
        self._streets.setdefault((c.row.street, c.row.kecamatan_code), []).append(c)

    def _moved(self, c: _Cluster) -> None:
        cell = _cell(c.row.lat, c.row.lon)
        if cell != c.cell:
            self._cells[c.cell].remove(c)
            self._cells.setdefault(cell, []).append(c)
            c.cell = cell

    def _candidates(self, report: Report) -> list[_Cluster]:
        """The incidents `cluster`'s query would list for this report, in its order (by id)."""
        assert report.lat is not None and report.lon is not None
        row, col = _cell(report.lat, report.lon)
        found = {id(c): c for c in self._streets.get((report.street, report.kecamatan_code), ())}
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                found.update((id(c), c) for c in self._cells.get((row + dr, col + dc), ()))
        return sorted((c for c in found.values() if self._prefilter(report, c.row)), key=lambda c: c.key)

    def _read_members(self, incident_ids: Sequence[int]) -> None:
        if not incident_ids:
            return
        found: dict[int, list[_Member]] = {i: [] for i in incident_ids}
        rows = self.session.execute(
            select(Report.incident_id, Report.id, Report.lat, Report.lon, Report.received_at, Report.depth_cm).where(
                Report.incident_id.in_(incident_ids),
                Report.duplicate_of_id.is_(None),
                Report.id.not_in(self.ids),
            )
        )
        for incident_id, rid, lat, lon, at, depth in rows:
            assert incident_id is not None
            found[incident_id].append(_Member(rid, lat, lon, _aware(at), depth))
        for incident_id, members in found.items():
            self.by_id[incident_id].members = members

    @staticmethod
    def _prefilter(report: Report, incident: _IncidentLike) -> bool:
        """The WHERE clause of `cluster`'s query, for one incident."""
        assert report.hazard is not None and report.lat is not None and report.lon is not None
        window = rules.CLUSTER_WINDOW
        near = (abs(incident.lat - report.lat) < 0.02 and abs(incident.lon - report.lon) < 0.02) or (
            incident.street == report.street and incident.kecamatan_code == report.kecamatan_code
        )
        return (
            incident.hazard in _related_hazards(report.hazard)
            and _aware(incident.last_at) >= report.received_at - window
            and _aware(incident.first_at) <= report.received_at + window
            and incident.state != "dismissed"
            and near
        )

    def duplicate_of(self, report: Report) -> _Candidate | None:
        """`_find_duplicate` against the rows read and the batch's reports finished so far."""
        if not report.author_hash:
            return None
        window = rules.DUPLICATE_WINDOW
        lo, hi = report.received_at - window, report.received_at + window
        seen = 0
        mine: str | None = None
        for cand in self.by_author.get(report.author_hash, ()):
            if cand.id == report.id or not lo <= cand.at <= hi:
                continue
            if cand.normalised is None:
                cand.normalised = rules.normalise_text(cand.text)
            if mine is None:
                mine = rules.normalise_text(report.text)
            if rules.similar_normalised(cand.normalised, mine):
                return cand
            seen += 1
            if seen == DUPLICATE_CANDIDATES:
                return None
        return None

    def finished(self, report: Report, incident: _Cluster | int | None) -> None:
        """A report of the batch is done and not a duplicate: later reports of its author may repeat it."""
        if report.author_hash:
            cands = self.by_author.setdefault(report.author_hash, [])
            bisect.insort(cands, _Candidate(report.id, report.received_at, report.text, incident), key=lambda c: c.id)

    def cluster(self, report: Report) -> _Cluster | None:
        """`cluster` against the incidents read and those the batch started or moved so far."""
        if report.hazard is None or report.lat is None or report.lon is None:
            return None
        best: tuple[float, _Cluster] | None = None
        for c in self._candidates(report):
            d = _distance_to(report, c.row)
            if d is not None and (best is None or d < best[0]):
                best = (d, c)
        if best is None:
            new = _new_incident(report)
            row = _IncidentRow(None, *(getattr(new, c) for c in _INCIDENT_COLUMNS))
            chosen = _Cluster(row, (1, len(self.clusters)), members=[])
            self._add(chosen)
        else:
            chosen = best[1]
        if chosen.members is None:
            assert chosen.row.id is not None
            self._read_members([chosen.row.id])
        assert chosen.members is not None
        member = _Member(report.id, report.lat, report.lon, report.received_at, report.depth_cm, report.text or "")
        chosen.members.append(member)
        chosen.joined.append(member)
        ms = chosen.members
        _apply_extent(
            chosen.row,
            rules.incident_extent([(m.lat, m.lon) for m in ms], [m.at for m in ms], [m.depth for m in ms]),
        )
        self._moved(chosen)
        return chosen

    def save_incidents(self, now: datetime) -> None:
        """Choose every touched incident's representative text among its newest counted reports, insert the
        incidents the batch started (in the order it started them, so their ids follow that order) and update
        the others, each in one statement."""
        touched = [c for c in self.clusters if c.joined]
        stored = [c.row.id for c in touched if c.row.id is not None]
        newest: dict[int | None, list[tuple[int, str]]] = {i: [] for i in stored}
        if stored:
            ranked = (
                select(
                    Report.incident_id,
                    Report.id,
                    Report.text,
                    func.row_number().over(partition_by=Report.incident_id, order_by=Report.id.desc()).label("n"),
                )
                .where(Report.incident_id.in_(stored), Report.duplicate_of_id.is_(None), Report.id.not_in(self.ids))
                .subquery()
            )
            rows = self.session.execute(
                select(ranked.c.incident_id, ranked.c.id, ranked.c.text).where(ranked.c.n <= REPRESENTATIVE_FROM)
            )
            for incident_id, rid, text_ in rows:
                newest[incident_id].append((rid, text_))
        for c in touched:
            texts = newest.get(c.row.id, []) + [(m.id, m.text or "") for m in c.joined]
            texts.sort(key=lambda t: -t[0])
            c.row.representative_text = representative([t for _, t in texts[:REPRESENTATIVE_FROM]])
        table = cast(Table, Incident.__table__)
        old = [c.row for c in touched if c.row.id is not None]
        new = [c.row for c in touched if c.row.id is None]
        if new:
            values = [{**{k: getattr(r, k) for k in _INCIDENT_COLUMNS}, "updated_at": now} for r in new]
            inserted = self.session.execute(
                insert(table).returning(table.c.id, sort_by_parameter_order=True), values
            ).scalars()
            for row, incident_id in zip(new, inserted, strict=True):
                row.id = incident_id
        if old:
            changed = ("lat", "lon", "first_at", "last_at", "report_count", "max_depth_cm", "representative_text")
            params = {k: bindparam(f"v_{k}", type_=table.c[k].type) for k in changed}
            self.session.execute(
                update(table).where(table.c.id == bindparam("b_id")).values({**params, "updated_at": now}),
                [{"b_id": r.id, **{f"v_{k}": getattr(r, k) for k in changed}} for r in old],
            )


def _incident_id(ref: _Cluster | int | None) -> int | None:
    return ref.row.id if isinstance(ref, _Cluster) else ref


# The columns enrichment writes, with their PostgreSQL types for the recordset the bulk UPDATE reads.
_DONE_COLUMNS: dict[str, str] = {
    "language": "text",
    "hazard": "text",
    "hazard_confidence": "float8",
    "depth_cm": "int",
    "severity": "text",
    "street": "text",
    "rw": "text",
    "place_names": "json",
    "geocode_reason": "text",
    "kecamatan_code": "text",
    "admin_code": "text",
    "geocode_method": "text",
    "lat": "float8",
    "lon": "float8",
    "duplicate_of_id": "int",
    "incident_id": "int",
    "alert_ids": "json",
}
# PostgreSQL: one statement, the batch as one JSON parameter read back as rows (as intake inserts them).
_RECORDSET_UPDATE = (
    "UPDATE reports AS r SET "  # noqa: S608 (constant names)
    + ", ".join(f"{c} = t.{c}" for c in _DONE_COLUMNS)
    + ", processing = 'done', enriched_at = %s, last_error = NULL, lease_until = NULL "
    + "FROM json_to_recordset(%s::json) AS t(id int, "
    + ", ".join(f"{c} {kind}" for c, kind in _DONE_COLUMNS.items())
    + ") WHERE r.id = t.id"
)


def _write_done(session: Session, reports: Sequence[Report], now: datetime) -> None:
    """One UPDATE for every enriched report of a batch."""
    if not reports:
        return
    if session.get_bind().dialect.name == "postgresql":
        batch = json.dumps(
            [{"id": r.id, **{c: getattr(r, c) for c in _DONE_COLUMNS}} for r in reports],
            ensure_ascii=False,
            allow_nan=False,
        )
        session.connection().exec_driver_sql(_RECORDSET_UPDATE, (now, batch))
        return
    table = cast(Table, Report.__table__)
    values: dict[str, Any] = {c: bindparam(f"v_{c}", type_=table.c[c].type) for c in _DONE_COLUMNS}
    values.update(processing="done", enriched_at=now, last_error=None, lease_until=None)
    rows = [{"b_id": r.id, **{f"v_{c}": getattr(r, c) for c in _DONE_COLUMNS}} for r in reports]
    session.execute(update(table).where(table.c.id == bindparam("b_id")).values(values), rows)


def write_batch(session: Session, *, claim: Claim, annotated: Annotated, now: datetime | None = None) -> BatchResult:
    """Step 2 of a batch, in the caller's transaction: keep what is still this claim's, decide near-duplicates
    and incidents report by report in id order, attach the alerts in force, record failures, and write every
    report in one bulk UPDATE."""
    from broadcast.alerts import service as alerts

    now = now or utcnow()
    _lock_clustering(session)
    owned = _own(session, claim)
    reports = [r for r in annotated.reports if r.id in owned]
    batch = _Batch(session, reports)
    incidents: dict[int, _Cluster | int | None] = {}
    for report in reports:
        duplicate = batch.duplicate_of(report)
        if duplicate is not None:
            report.duplicate_of_id = duplicate.id
            incidents[report.id] = duplicate.incident
        else:
            joined = batch.cluster(report)
            incidents[report.id] = joined if joined is not None else report.incident_id
            batch.finished(report, incidents[report.id])
    batch.save_incidents(now)
    codes = {r.id: r.admin_code or r.kecamatan_code for r in reports}
    in_force = alerts.current_for_areas(session, codes=[c for c in codes.values() if c], limit=5)
    for report in reports:
        report.incident_id = _incident_id(incidents[report.id])
        code = codes[report.id]
        report.alert_ids = [a.id for a in in_force[code]] if code else []
    _write_done(session, reports, now)
    commands = [i for i in annotated.commands if i in owned]
    if commands:
        session.execute(
            update(Report)
            .where(Report.id.in_(commands))
            .values(processing="skipped")
            .execution_options(synchronize_session=False)
        )
    failed = [i for i in annotated.failed if i in owned]
    for report_id in failed:
        mark_failed(session, report_id=report_id, error=annotated.failed[report_id], now=now)
    session.flush()
    return BatchResult(done=len(reports) + len(commands), failed=len(failed), lost=len(claim.ids) - len(owned))


def _stop_at(engine: Engine, *, claim: Claim, report_id: int, rest: Sequence[int], error: str) -> None:
    """A run stopped at `report_id`: it fails with `error` and the claim's `rest` is given back, on a fresh
    connection (the stop may have cut a statement short)."""
    _drop_connections(engine)
    with session_scope(engine) as session:
        mark_failed(session, report_id=report_id, error=error)
        release(session, claim=claim, ids=rest)


def enrich_one_by_one(
    engine: Engine,
    *,
    claim: Claim,
    within: str | None,
    channel_areas: Mapping[str, str] | None = None,
    stop: tuple[type[BaseException], ...] = (),
    stop_reason: str = "",
) -> BatchResult:
    """Enrich a claim one report per transaction (the baseline, and the fallback when a batch cannot be written):
    a report that fails is marked failed with its reason and the others go on. On a `stop` exception the report
    at hand is marked failed with `stop_reason`, the rest are given back, and Interrupted is raised."""
    result = BatchResult()
    for n, report_id in enumerate(claim.ids):
        try:
            with session_scope(engine) as session:
                row = session.get(Report, report_id, with_for_update=True)
                mine = row is not None and row.processing == "working" and row.lease_until == claim.lease_until
                if mine:
                    enrich(session, report_id=report_id, within=within, channel_areas=channel_areas)
            result += BatchResult(done=1) if mine else BatchResult(lost=1)
        except stop as exc:
            _stop_at(
                engine, claim=claim, report_id=report_id, rest=claim.ids[n + 1 :], error=stop_reason or _error(exc)
            )
            raise Interrupted(result + BatchResult(failed=1), exc) from exc
        except Exception as exc:
            stopped = _stopped_by(exc, stop)
            if stopped is not None:  # the stop arrived while the transaction was closing, and that failed too
                error = stop_reason or _error(stopped)
                _stop_at(engine, claim=claim, report_id=report_id, rest=claim.ids[n + 1 :], error=error)
                raise Interrupted(result + BatchResult(failed=1), stopped) from exc
            log.exception("report %s: enrichment failed", report_id)
            _drop_connections(engine)
            with session_scope(engine) as session:
                mark_failed(session, report_id=report_id, error=_error(exc))
            result += BatchResult(failed=1)
    return result


def enrich_claimed(
    engine: Engine,
    *,
    claim: Claim,
    within: str | None,
    channel_areas: Mapping[str, str] | None = None,
    stop: tuple[type[BaseException], ...] = (),
    stop_reason: str = "",
) -> BatchResult:
    """Enrich a claimed batch (module docstring): step 1 with no transaction held, step 2 in one. When step 2
    fails, the batch is enriched one report per transaction instead. On a `stop` exception (e.g. a soft time
    limit): in step 1 the report at hand fails with `stop_reason` and the others are given back; in step 2 the
    whole batch fails with it (it is retried after a backoff); Interrupted is raised."""
    with session_scope(engine) as session:
        reports = load_claimed(session, claim=claim)
    annotated = Annotated()
    try:
        annotate_batch(reports, within=within, channel_areas=channel_areas, stop=stop, out=annotated)
    except stop as exc:
        failed = dict(annotated.failed)
        if annotated.at is not None:
            failed[annotated.at] = stop_reason or _error(exc)
        _drop_connections(engine)
        with session_scope(engine) as session:
            for report_id, error in failed.items():
                mark_failed(session, report_id=report_id, error=error)
            release(session, claim=claim, ids=[i for i in claim.ids if i not in failed])
        raise Interrupted(BatchResult(failed=len(failed)), exc) from exc
    except Exception:
        log.exception("batch of %d reports not annotated; enriching them one by one", len(claim.ids))
        return enrich_one_by_one(
            engine, claim=claim, within=within, channel_areas=channel_areas, stop=stop, stop_reason=stop_reason
        )
    try:
        with session_scope(engine) as session:
            return write_batch(session, claim=claim, annotated=annotated)
    except stop as exc:
        _drop_connections(engine)
        with session_scope(engine) as session:
            for report in load_claimed(session, claim=claim):
                mark_failed(session, report_id=report.id, error=stop_reason or _error(exc))
        raise Interrupted(BatchResult(failed=len(claim.ids)), exc) from exc
    except Exception:
        log.exception("batch of %d reports not written; enriching them one by one", len(claim.ids))
    return enrich_one_by_one(
        engine, claim=claim, within=within, channel_areas=channel_areas, stop=stop, stop_reason=stop_reason
    )


def preload(*, within: str | None) -> None:
    """Build the geoparser's name index (called once in an intake worker's main process, before the pool forks,
    so the first batch of reports does not pay for it in every pool process)."""
    geoparse.parse_location("banjir di jalan", within=within)
    log.info("report geoparser ready (within %s)", within or "Indonesia")

"""Triage: staff move reports and incidents through new → verified / dismissed / actioned, assign them and add
notes, inside their jurisdiction. Every such step, for a report or an incident, is the one `transition`: check the
right, set the field, append the note, audit before and after."""

from __future__ import annotations

from typing import Literal, TypeVar

from shapely.geometry import Point
from sqlalchemy.orm import Session

from broadcast.audit import service as audit
from broadcast.authority import Action as Can
from broadcast.authority import Actor, Target, require
from broadcast.db import utcnow
from broadcast.errors import InvalidTransition, NotFound
from broadcast.reports import rules
from broadcast.reports.models import Incident, Report
from broadcast.trust import service as trust

__all__ = [
    "IncidentNotFound",
    "ReportNotFound",
    "get_incident",
    "get_incident_for",
    "get_report",
    "get_report_for",
    "report_target",
    "set_state",
    "transition",
    "update_triage",
]

# What each kind of subject is called in audit entries and messages, the right its triage needs, and the code of
# a refused move (kept per kind: API clients tell a report's refusal from an incident's).
_KINDS: dict[type, tuple[str, str, Can, str]] = {
    Report: ("report", "Laporan", Can.REPORT_TRIAGE, InvalidTransition.code),
    Incident: ("incident", "Kejadian", Can.INCIDENT_TRIAGE, "invalid-incident-transition"),
}


class ReportNotFound(NotFound):
    code = "report-not-found"


class IncidentNotFound(NotFound):
    code = "incident-not-found"


def report_target(report: Report | Incident) -> Target:
    """The authority target of a report or incident: its admin code, else its point; unlocated when neither."""
    code = report.admin_code or report.kecamatan_code
    point = None if code or report.lat is None or report.lon is None else Point(report.lon, report.lat)
    return Target.area([code], [point], located=bool(code or point), label=f"report {report.id}")


_Subject = TypeVar("_Subject", Report, Incident)


def _load(session: Session, model: type[_Subject], subject_id: int, *, reader: Actor | None = None) -> _Subject:
    found = session.get(model, subject_id)
    if found is None:
        missing = ReportNotFound if model is Report else IncidentNotFound
        kind, label = _KINDS[model][:2]
        raise missing(f"{label} {subject_id} tidak ditemukan / {kind} not found")
    if reader is not None:
        require(reader, Can.REPORT_READ, report_target(found))
    return found


def get_report(session: Session, *, report_id: int) -> Report:
    """The report with this id.

    Raises: ReportNotFound.
    """
    return _load(session, Report, report_id)


def get_incident(session: Session, *, incident_id: int) -> Incident:
    """The incident with this id.

    Raises: IncidentNotFound.
    """
    return _load(session, Incident, incident_id)


def get_report_for(session: Session, *, report_id: int, actor: Actor) -> Report:
    """A report, for staff whose jurisdiction covers it.

    Raises: ReportNotFound, RoleNotAllowed, OutsideJurisdiction.
    """
    return _load(session, Report, report_id, reader=actor)


def get_incident_for(session: Session, *, incident_id: int, actor: Actor) -> Incident:
    """An incident, for staff whose jurisdiction covers it.

    Raises: IncidentNotFound, RoleNotAllowed, OutsideJurisdiction.
    """
    return _load(session, Incident, incident_id, reader=actor)


def transition(
    session: Session,
    subject: Report | Incident,
    *,
    actor: Actor,
    step: Literal["state", "triage"],
    value: str | int | None,
    note: str | None,
) -> None:
    """The one triage step for a report or an incident: `state` moves it to the state `value` (as
    rules.TRANSITIONS allows), `triage` assigns it to the user id `value` (None clears); either appends `note`
    and is audited ("report.state", "incident.triage", ...), inside the actor's jurisdiction.

    Raises: InvalidTransition, RoleNotAllowed, OutsideJurisdiction.
    """
    kind, label, right, refused = _KINDS[type(subject)]
    require(actor, right, report_target(subject))
    field = "state" if step == "state" else "assignee_id"
    if step == "state":
        allowed = rules.TRANSITIONS.get(subject.state, frozenset())
        if value not in allowed:
            raise InvalidTransition(
                f"{label} {subject.id}: {subject.state} → {value} tidak diizinkan / not allowed "
                f"(allowed: {', '.join(sorted(allowed)) or 'none'})",
                code=refused,
            )
    before = {field: getattr(subject, field), "notes": subject.notes}
    setattr(subject, field, value)
    if note:
        subject.notes = f"{subject.notes}\n{note}" if subject.notes else note
    if isinstance(subject, Incident):
        subject.updated_at = utcnow()
    audit.record(
        session,
        actor_id=actor.id,
        action=f"{kind}.{step}",
        subject_type=kind,
        subject_id=subject.id,
        before=before,
        after={field: getattr(subject, field), "notes": subject.notes},
    )
    session.flush()


def set_state(session: Session, *, report_id: int, state: str, actor: Actor, note: str | None = None) -> Report:
    """Move a report through triage (new → verified / dismissed / actioned), audited. The one place a report's
    state changes, so follow-ups (e.g. replying to the reporter) hook in here; only staff whose jurisdiction
    covers the report may (the reporter may get an SMS).

    Raises: ReportNotFound, InvalidTransition, RoleNotAllowed, OutsideJurisdiction.
    """
    report = get_report(session, report_id=report_id)
    transition(session, report, actor=actor, step="state", value=state, note=note)
    if state in ("verified", "actioned"):
        # Close the loop: the citizen hears back on the channel the report came from (opt-outs respected); the
        # reply is sent after the commit (its ReplyQueued event).
        trust.notify_reporter(session, report, state)
    return report


def update_triage(
    session: Session,
    *,
    model: type[_Subject],
    subject_id: int,
    actor: Actor,
    assignee_id: int | None,
    note: str | None,
) -> _Subject:
    """Assign a report or an incident (`model`; None clears) and append a note, audited; inside the actor's
    jurisdiction.

    Raises: ReportNotFound, IncidentNotFound, RoleNotAllowed, OutsideJurisdiction.
    """
    subject = _load(session, model, subject_id)
    transition(session, subject, actor=actor, step="triage", value=assignee_id, note=note)
    return subject

"""Incidents (reports grouped by enrichment) as staff work them: a state move that carries to the incident's
reports, and a draft alert for the incident's kecamatan from its hazard's template."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from broadcast.alerts import hazards
from broadcast.alerts import service as alerts
from broadcast.alerts.models import Alert
from broadcast.alerts.rules import AUTHOR_ROLES
from broadcast.alerts.schemas import AlertCreate, AreaIn
from broadcast.audit import service as audit
from broadcast.authority import Action as Can
from broadcast.authority import Actor, may, require
from broadcast.db import utcnow
from broadcast.reports import rules
from broadcast.reports.intake import InvalidReport
from broadcast.reports.models import Incident, Report
from broadcast.reports.triage import get_incident, report_target, set_state, transition
from broadcast.users import service as users
from broadcast.users.models import User
from geo import gazetteer, placenames

__all__ = [
    "draft_alert_from_incident",
    "set_incident_state",
]


def set_incident_state(
    session: Session, *, incident_id: int, state: str, actor: Actor, note: str | None = None
) -> Incident:
    """Triage an incident and, through set_state, each of its reports that may make the same move and that the
    actor's jurisdiction covers; audited.

    Raises: IncidentNotFound, InvalidTransition, RoleNotAllowed, OutsideJurisdiction.
    """
    incident = get_incident(session, incident_id=incident_id)
    transition(session, incident, actor=actor, step="state", value=state, note=note)
    members = session.scalars(select(Report).where(Report.incident_id == incident.id).order_by(Report.id))
    for member in list(members):
        allowed = may(actor, Can.REPORT_TRIAGE, report_target(member)).allowed
        if allowed and state in rules.TRANSITIONS.get(member.state, frozenset()):
            set_state(session, report_id=member.id, state=state, actor=actor, note=f"kejadian #{incident.id}")
    return incident


def _area_code(incident: Incident) -> str:
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
    incident = get_incident(session, incident_id=incident_id)
    require(actor, Can.INCIDENT_DRAFT_ALERT, report_target(incident))
    template = rules.HAZARD_TEMPLATES.get(incident.hazard)
    if template is None:
        raise InvalidReport(f"Tidak ada templat untuk {incident.hazard} / no alert template for this hazard")
    code = _area_code(incident)
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

"""Triage on SQLite and PostgreSQL through the one transition: a report's and an incident's state moves and
assignments append their note and are audited with what changed; a refused move changes and records nothing, and
names the rule (with a code per kind); staff outside the place may not."""

from datetime import timedelta

import pytest
import sqlalchemy as sa

from broadcast.audit import service as audit
from broadcast.audit.models import AuditEntry
from broadcast.authority import OutsideJurisdiction
from broadcast.db import utcnow
from broadcast.errors import InvalidTransition
from broadcast.reports import incidents, intake, triage
from broadcast.reports.models import Incident, Report
from tests.factories import make_team

pytestmark = pytest.mark.integration
PALU = "72.71.01"  # Kecamatan Palu Barat


@pytest.fixture
def team(session):
    return make_team(session)


def _report(session, ext: str) -> Report:
    report_id, _ = intake.intake(session, source="api", external_id=ext, raw={}, text="banjir", author=None,
                                 admin_code=PALU)
    return session.get(Report, report_id)


def _incident(session, *members: Report) -> Incident:
    now = utcnow()
    incident = Incident(hazard="banjir", lat=-0.9, lon=119.85, admin_code=PALU, kecamatan_code=PALU,
                        first_at=now - timedelta(hours=1), last_at=now, report_count=len(members),
                        updated_at=now - timedelta(hours=1))
    session.add(incident)
    session.flush()
    for member in members:
        member.incident_id = incident.id
    session.flush()
    return incident


def _trail(session, kind: str, subject_id: int) -> list[tuple[str, dict, dict]]:
    return [(e.action, e.before, e.after) for e in audit.entries_for(session, subject_type=kind, subject_id=subject_id)]


def test_report_moves_and_assignments_append_notes_and_are_audited(session, team):
    report = _report(session, "t-1")
    operator = team["operator"]
    triage.set_state(session, report_id=report.id, state="verified", actor=operator, note="dicek")
    triage.update_triage(session, model=Report, subject_id=report.id, actor=operator, assignee_id=team["analyst"].id,
                         note="ke tim")
    triage.update_triage(session, model=Report, subject_id=report.id, actor=operator, assignee_id=None, note=None)
    assert (report.state, report.assignee_id, report.notes) == ("verified", None, "dicek\nke tim")
    assert _trail(session, "report", report.id) == [
        ("report.state", {"state": "new", "notes": None}, {"state": "verified", "notes": "dicek"}),
        ("report.triage", {"assignee_id": None, "notes": "dicek"},
         {"assignee_id": team["analyst"].id, "notes": "dicek\nke tim"}),
        ("report.triage", {"assignee_id": team["analyst"].id, "notes": "dicek\nke tim"},
         {"assignee_id": None, "notes": "dicek\nke tim"}),
    ]


def test_an_incident_move_carries_to_its_reports_and_both_are_audited(session, team):
    first, second = _report(session, "t-2"), _report(session, "t-3")
    triage.set_state(session, report_id=second.id, state="actioned", actor=team["admin"])  # no move on from here
    incident = _incident(session, first, second)
    moved_before = incident.updated_at
    triage.update_triage(session, model=Incident, subject_id=incident.id, actor=team["operator"],
                         assignee_id=team["operator"].id, note="tim 1")
    incidents.set_incident_state(session, incident_id=incident.id, state="verified", actor=team["operator"])
    assert (incident.state, incident.assignee_id, incident.notes) == ("verified", team["operator"].id, "tim 1")
    assert incident.updated_at > moved_before
    assert _trail(session, "incident", incident.id) == [
        ("incident.triage", {"assignee_id": None, "notes": None}, {"assignee_id": team["operator"].id, "notes": "tim 1"}),
        ("incident.state", {"state": "new", "notes": "tim 1"}, {"state": "verified", "notes": "tim 1"}),
    ]
    assert (first.state, first.notes, second.state) == ("verified", f"kejadian #{incident.id}", "actioned")
    assert [a for a, _, _ in _trail(session, "report", first.id)] == ["report.state"]


@pytest.mark.parametrize("kind", ["report", "incident"])
def test_a_refused_move_changes_and_records_nothing_and_names_the_rule(session, team, kind):
    report = _report(session, "t-4")
    subject = report if kind == "report" else _incident(session, report)
    subject.state = "actioned"
    session.flush()
    entries = session.scalar(sa.select(sa.func.count()).select_from(AuditEntry))
    with pytest.raises(InvalidTransition) as refused:
        if kind == "report":
            triage.set_state(session, report_id=subject.id, state="new", actor=team["operator"], note="lagi")
        else:
            incidents.set_incident_state(session, incident_id=subject.id, state="new", actor=team["operator"],
                                         note="lagi")
    assert refused.value.code == ("invalid-transition" if kind == "report" else "invalid-incident-transition")
    assert "actioned → new" in str(refused.value) and "allowed: none" in str(refused.value)
    assert (subject.state, subject.notes) == ("actioned", None)
    assert session.scalar(sa.select(sa.func.count()).select_from(AuditEntry)) == entries


def test_staff_outside_the_place_may_not_triage_it(session, team):
    report = _report(session, "t-5")
    incident = _incident(session, report)
    grobogan = team["operator_grobogan"]
    with pytest.raises(OutsideJurisdiction):
        triage.update_triage(session, model=Report, subject_id=report.id, actor=grobogan, assignee_id=grobogan.id,
                             note="x")
    with pytest.raises(OutsideJurisdiction):
        incidents.set_incident_state(session, incident_id=incident.id, state="dismissed", actor=grobogan)
    assert (report.assignee_id, report.notes, incident.state) == (None, None, "new")
    assert _trail(session, "report", report.id) == [] and _trail(session, "incident", incident.id) == []

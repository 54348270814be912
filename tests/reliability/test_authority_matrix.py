"""Authorisation matrix of actions x roles x jurisdiction, generated from broadcast.authority.POLICY (issue 18).

Every action the policy names is run through its service function by every role in four places relative to a
Kota Palu (72.71) object: the same kabupaten, another kabupaten (Grobogan 33.15), the parent provinsi (Sulawesi
Tengah 72) and national. The expected answer is computed from the policy table alone (role outside the rule:
403 role-not-allowed; area rule and another kabupaten: 403 outside-jurisdiction; otherwise the action's own
success status), so a new action without a rule or without a runner here fails the suite.

Also a property test: random areas drawn near Palu's border never yield a recipient outside Palu.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broadcast.alerts import service as alerts
from broadcast.alerts.models import MsgType
from broadcast.alerts.schemas import AlertCreate
from broadcast.api.problems import status_for
from broadcast.authority import POLICY, Action, Target, may
from broadcast.cap import validation
from broadcast.dispatch.plan import plan_alert
from broadcast.errors import BroadcastError
from broadcast.intake import cap_documents
from broadcast.reports import incidents, triage
from broadcast.reports.models import Incident, Report
from broadcast.subscribers import service as subscribers
from broadcast.subscribers.targeting import SubscriberArrays, TargetSpec
from broadcast.trust import service as trust
from broadcast.trust.models import HoaxReport
from broadcast.users.models import Role
from geo import boundaries, gazetteer, jurisdiction
from geo.crs import metric_for
from tests.factories import alert_payload, make_user

pytestmark = pytest.mark.integration

RELATIONS = {"same-kabupaten": "72.71", "other-kabupaten": "33.15", "parent-provinsi": "72", "national": None}
ROLES = (Role.OPERATOR, Role.APPROVER, Role.ADMIN, Role.ANALYST)


def cap_doc(identifier: str, *, code: str = "72.71", msg_type: str = "Alert", references: str | None = None,
            sender: str = "bpbd@palu.example") -> bytes:
    refs = f"<references>{references}</references>" if references else ""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>{identifier}</identifier><sender>{sender}</sender><sent>2026-12-07T10:00:00+07:00</sent>
  <status>Exercise</status><msgType>{msg_type}</msgType><scope>Public</scope>{refs}
  <info><language>id-ID</language><category>Met</category><event>Banjir</event><urgency>Immediate</urgency>
    <severity>Severe</severity><certainty>Likely</certainty><headline>Banjir impor</headline>
    <description>Uji impor</description>
    <area><areaDesc>Wilayah uji</areaDesc><geocode><valueName>KEMENDAGRI</valueName><value>{code}</value></geocode>
    </area></info>
</alert>""".encode()


@dataclass
class Objects:
    """Kota Palu objects every runner acts on (written by people outside the matrix)."""

    draft: int
    submitted: int
    published: int
    report: int
    incident: int
    hoax: int
    clarification: int
    subscriber: int


def _objects(session) -> Objects:
    author = make_user(session, "penulis.palu", Role.OPERATOR, "72.71")
    second = make_user(session, "penyetuju.palu", Role.APPROVER, "72.71")
    payload = AlertCreate(**alert_payload("Exercise"))
    draft = alerts.create_alert(session, data=payload, author=author, sender="t@x")
    submitted = alerts.create_alert(session, data=payload, author=author, sender="t@x")
    alerts.submit_alert(session, alert_id=submitted.id, actor=author)
    published = alerts.create_alert(session, data=payload, author=author, sender="t@x")
    alerts.submit_alert(session, alert_id=published.id, actor=author)
    alerts.approve_alert(session, alert_id=published.id, approver=second, production=False)
    plan_alert(session, alert_id=published.id)
    report = Report(source="web", external_id="matriks-1", raw={}, text="banjir", admin_code="72.71.01.1004",
                    hazard="banjir", state="new")
    now = published.sent
    incident = Incident(hazard="banjir", lat=-0.9, lon=119.87, admin_code="72.71.01.1004",
                        kecamatan_code="72.71.01", first_at=now, last_at=now, report_count=1)
    open_hoax = HoaxReport(source="web", external_id="matriks-h1", text="Hoaks tsunami jam 3 di Palu")
    held_hoax = HoaxReport(source="web", external_id="matriks-h2", text="Bantuan tunai lima juta daftar di tautan")
    session.add_all([report, incident, open_hoax, held_hoax])
    session.flush()
    page = trust.submit_clarification(session, hoax_ids=[held_hoax.id], title_id="Tidak benar", body_id="Hoaks.",
                                      actor=author)
    sub = subscribers.add_subscriber(session, phone="+6281299911111", admin_code="72.71.01.1004")
    session.commit()
    return Objects(draft.id, submitted.id, published.id, report.id, incident.id, open_hoax.id, page.id, sub.id)


Runner = Callable[[Any, Any, Objects], object]


def _import(session, actor, o: Objects) -> object:
    msg = validation.parse_cap(cap_doc(f"MATRIKS-{secrets.token_hex(4)}"))
    return cap_documents.import_message(session, msg=msg, author=actor, origin="cap-import", sender="bpbd@broadcast.local")


# action -> (the HTTP status its route answers on success, what the service call does)
RUNNERS: dict[Action, tuple[int, Runner]] = {
    Action.ALERT_CREATE: (201, lambda s, a, o: alerts.create_alert(
        s, data=AlertCreate(**alert_payload("Exercise")), author=a, sender="t@x")),
    Action.ALERT_EDIT: (200, lambda s, a, o: alerts.edit_draft(
        s, alert_id=o.draft, data=AlertCreate(**alert_payload("Exercise")), actor=a)),
    Action.ALERT_SUBMIT: (200, lambda s, a, o: alerts.submit_alert(s, alert_id=o.draft, actor=a)),
    Action.ALERT_APPROVE: (202, lambda s, a, o: alerts.approve_alert(
        s, alert_id=o.submitted, approver=a, production=False)),
    Action.ALERT_REJECT: (200, lambda s, a, o: alerts.reject_alert(s, alert_id=o.submitted, approver=a, reason="x")),
    Action.ALERT_FOLLOW_UP: (201, lambda s, a, o: alerts.create_follow_up(
        s, original_id=o.published, actor=a, msg_type=MsgType.CANCEL, reason="uji")),
    Action.ALERT_IMPORT: (201, _import),
    Action.ALERT_READ: (200, lambda s, a, o: alerts.read_alert(s, alert_id=o.draft, actor=a)),
    Action.ALERT_OUTBOX_READ: (200, lambda s, a, o: alerts.read_alert(s, alert_id=o.published, actor=a,
                                                                      what="outbox")),
    Action.REPORT_READ: (200, lambda s, a, o: triage.get_report_for(s, report_id=o.report, actor=a)),
    Action.REPORT_TRIAGE: (200, lambda s, a, o: triage.set_state(s, report_id=o.report, state="verified", actor=a)),
    Action.INCIDENT_TRIAGE: (200, lambda s, a, o: incidents.set_incident_state(
        s, incident_id=o.incident, state="verified", actor=a)),
    Action.INCIDENT_DRAFT_ALERT: (201, lambda s, a, o: incidents.draft_alert_from_incident(
        s, incident_id=o.incident, actor=a, sender="t@x")),
    Action.CLARIFICATION_SUBMIT: (303, lambda s, a, o: trust.submit_clarification(
        s, hoax_ids=[o.hoax], title_id="Judul", body_id="Isi", actor=a)),
    Action.CLARIFICATION_APPROVE: (303, lambda s, a, o: trust.approve_clarification(
        s, clarification_id=o.clarification, approver=a)),
    Action.CLARIFICATION_REJECT: (303, lambda s, a, o: trust.reject_clarification(
        s, clarification_id=o.clarification, approver=a, reason="x")),
    Action.SUBSCRIBER_READ: (200, lambda s, a, o: subscribers.check_jurisdiction(
        a, subscribers.get_subscriber(s, subscriber_id=o.subscriber), read=True)),
    Action.SUBSCRIBER_WRITE: (200, lambda s, a, o: subscribers.update_subscriber(
        s, subscriber_id=o.subscriber, actor=a, changes={"language": "en"})),
}


def expected(action: Action, role: Role, relation: str) -> str:
    """What the policy table says `role` in `relation` to a Kota Palu object meets."""
    rule = POLICY[action]
    if role.value not in rule.roles:
        return "403 /problems/role-not-allowed"
    if rule.area and relation == "other-kabupaten":
        return "403 /problems/outside-jurisdiction"
    return str(RUNNERS[action][0])


def test_every_action_has_a_rule_and_a_runner():
    assert set(POLICY) == set(Action), "actions without a rule: " + ", ".join(sorted(set(Action) - set(POLICY)))
    missing = sorted(a.value for a in set(Action) - set(RUNNERS))
    assert not missing, "actions without a runner in tests/reliability/test_authority_matrix.py: " + ", ".join(missing)


def test_actions_roles_jurisdictions(session, record):
    objects = _objects(session)
    actors = {
        (role, relation): make_user(session, f"{role.value}.{relation}", role, code)
        for role in ROLES
        for relation, code in RELATIONS.items()
    }
    session.commit()
    failures = []
    for action in Action:
        ok_status, run = RUNNERS[action]
        for (role, relation), actor in actors.items():
            want = expected(action, role, relation)
            try:
                run(session, actor, objects)
                got = str(ok_status)
            except BroadcastError as exc:
                got = f"{status_for(exc)} /problems/{exc.code}"
            finally:
                session.rollback()
            ok = got == want
            record("authorisation", f"action x role x jurisdiction ({want.split(' ')[0]})", "as expected"
                   if ok else "WRONG", ok=ok)
            if not ok:
                failures.append(f"{action.value} as {role.value} ({relation}): expected {want}, got {got}")
    assert not failures, "\n".join(failures)


# --------------------------------------------------------------------------- property: border areas


def _palu_border_subscribers() -> SubscriberArrays:
    """Subscribers on both sides of the Palu / Donggala / Sigi border: points (with their located code) and
    code-only ones at desa, kecamatan and kabupaten level."""
    rng = np.random.default_rng(18)
    lon = rng.uniform(119.70, 120.05, 3000)
    lat = rng.uniform(-1.05, -0.70, 3000)
    codes = []
    for x, y in zip(lon, lat, strict=True):
        found = boundaries.locate(float(x), float(y))
        codes.append(next((found[lv] for lv in ("desa_kelurahan", "kecamatan", "kabupaten_kota") if found[lv]), ""))
    code_only = ["72.71", "72.03", "72.10", "72.71.01", "72.03.04", "72.71.01.1004", "72.03.04.2001",
                 *[c for c, _ in boundaries.descendants("72.03", "desa_kelurahan")[:40]],
                 *[c for c, _ in boundaries.descendants("72.71", "desa_kelurahan")[:40]]]
    n = len(code_only)
    all_lon = np.concatenate([lon, np.full(n, np.nan)])
    all_lat = np.concatenate([lat, np.full(n, np.nan)])
    all_codes = np.array(codes + code_only, dtype="U13")
    ids = np.arange(all_codes.size, dtype=np.int64)
    return SubscriberArrays(ids, all_lon, all_lat, all_codes, np.full(ids.size, "id", dtype="U8"),
                            {"sms": np.ones(ids.size, dtype=bool), "social": np.zeros(ids.size, dtype=bool)})


SUBS = None
PALU = boundaries.geometry_of("72.71")
BORDER = PALU.boundary


def _subs() -> SubscriberArrays:
    global SUBS
    if SUBS is None:
        SUBS = _palu_border_subscribers()
    return SUBS


@st.composite
def border_areas(draw):  # type: ignore[no-untyped-def]
    """A box, a sliver MultiPolygon or a circle-ish blob centred within 1 km of Palu's boundary."""
    at = BORDER.interpolate(draw(st.floats(0, 1)), normalized=True)
    proj = metric_for(at)
    c = proj.forward(at)
    cx = c.x + draw(st.floats(-1000, 1000))
    cy = c.y + draw(st.floats(-1000, 1000))
    kind = draw(st.sampled_from(["box", "slivers", "blob"]))
    if kind == "box":
        half = draw(st.floats(2, 1500))
        shape = shapely.box(cx - half, cy - half, cx + half, cy + half)
    elif kind == "slivers":
        side = draw(st.floats(1, 30))
        offsets = draw(st.lists(st.tuples(st.floats(-800, 800), st.floats(-800, 800)), min_size=2, max_size=5))
        shape = shapely.union_all([shapely.box(cx + dx, cy + dy, cx + dx + side, cy + dy + side)
                                   for dx, dy in offsets])
    else:
        shape = shapely.Point(cx, cy).buffer(draw(st.floats(5, 1500)), quad_segs=6)
    return proj.inverse(shape)


def _inside_palu(subs: SubscriberArrays, ids: np.ndarray) -> np.ndarray:
    """A subscriber lies inside Palu when their code does, or (a point in no unit, e.g. on the bay) their point
    lies within Palu's boundary and geo's border tolerance."""
    pos = np.searchsorted(subs.ids, ids)
    home = jurisdiction.home_geometry("72.71")
    return np.array(
        [
            gazetteer.contains("72.71", str(c)) if c else home.contains(shapely.Point(x, y))
            for c, x, y in zip(subs.codes[pos], subs.lon[pos], subs.lat[pos], strict=True)
        ],
        dtype=bool,
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(area=border_areas())
def test_areas_near_the_border_never_reach_outside_the_jurisdiction(area):
    """Whatever a Palu operator draws near Palu's border: either the policy refuses it, or every subscriber the
    fan-out plans (match, then held to the jurisdiction) lies inside Palu, and no code-only subscriber outside
    Palu is matched at all."""
    subs = _subs()

    class PaluOperator:
        id, role, jurisdiction = 0, "operator", "72.71"

    decision = may(PaluOperator(), Action.ALERT_CREATE, Target.area([], [area]))
    if not decision.allowed:
        assert decision.problem == "outside-jurisdiction" and decision.refused
        return
    matched = subs.match(TargetSpec((), area))
    planned = subs.within(matched, "72.71")
    assert _inside_palu(subs, planned).all()
    code_only = matched[np.isnan(subs.lon[np.searchsorted(subs.ids, matched)])]
    assert _inside_palu(subs, code_only).all(), "a code-only subscriber outside Palu was matched"

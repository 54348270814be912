"""Issue 18: the side-path attacks of the outside review, each as it was tried, now refused (403 naming the rule,
nothing changed), and one public truth of an alert chain on every public surface.

Kota Palu (72.71) staff attack Kabupaten Sleman (34.04); every refusal is counted before/after like the bad-input
suite and recorded for RELIABILITY.md.
"""

from __future__ import annotations

import csv
import io
import json
import re
import secrets
import subprocess

import numpy as np
import pytest
import shapely
import sqlalchemy as sa

from broadcast.alerts import service as alerts
from broadcast.alerts.models import Alert, AlertArea, MsgType
from broadcast.alerts.schemas import AlertCreate
from broadcast.db import make_engine, session_scope, utcnow
from broadcast.dispatch.models import Delivery
from broadcast.dispatch.plan import plan_alert
from broadcast.partners import service as partners
from broadcast.reports.models import Incident, Report
from broadcast.subscribers import service as subscribers
from broadcast.subscribers.targeting import SubscriberArrays, TargetSpec
from broadcast.trust import service as trust
from broadcast.trust.models import HoaxReport, ReplyContact, TrustReply
from broadcast.users.models import Role, User
from broadcast.webhooks.service import handle_inbound_sms
from channels.base import InboundEvent
from geo import jurisdiction
from geo.crs import metric_for
from tests.e2e.conftest import broadcast_exe, clean_env
from tests.factories import alert_payload, login_form, make_user
from tests.reliability.helpers import World, world
from tests.reliability.test_authority_matrix import cap_doc

pytestmark = pytest.mark.integration

SLEMAN_DESA = "34.04.01.2001"
SLEMAN_POINT = (110.29558596428572, -7.813140000000001)  # inside that desa
DONGGALA_NEAR_PALU = (119.903, -0.798)  # about 200 m from Kota Palu's border, inside Kabupaten Donggala


def mapping(geom: shapely.Geometry) -> dict:
    """GeoJSON of a geometry as plain lists, the way a browser sends it."""
    return json.loads(shapely.to_geojson(geom))


def metric_box(lon: float, lat: float, side_m: float, dx_m: float = 0.0, dy_m: float = 0.0) -> shapely.Polygon:
    proj = metric_for(shapely.Point(lon, lat))
    c = proj.forward(shapely.Point(lon, lat))
    x, y = c.x + dx_m, c.y + dy_m
    return proj.inverse(shapely.box(x - side_m / 2, y - side_m / 2, x + side_m / 2, y + side_m / 2))


def sleman_slivers() -> shapely.MultiPolygon:
    """Three 4 m x 4 m squares inside a Sleman desa (48 m²: under the old 100 m² noise floor)."""
    lon, lat = SLEMAN_POINT
    return shapely.MultiPolygon([metric_box(lon, lat, 4, dx, dy) for dx, dy in ((0, 0), (30, 0), (0, 30))])


def sleman_world(w: World) -> dict[str, int]:
    """Sleman staff, two Sleman subscribers and a published Sleman alert (approved by a second Sleman person)."""
    with session_scope(w.engine) as s:
        op = make_user(s, "op.sleman", Role.OPERATOR, "34.04")
        apv = make_user(s, "apv.diy", Role.APPROVER, "34")
        subs = [subscribers.add_subscriber(s, phone=f"+6281355500{n:03d}", admin_code=SLEMAN_DESA).id
                for n in range(2)]
        payload = alert_payload("Exercise", codes=["34.04"])
        payload["infos"][0]["headline"] = "Banjir lahar dingin di Sleman"
        alert = alerts.create_alert(s, data=AlertCreate(**payload), author=op, sender="bpbd@sleman")
        alerts.submit_alert(s, alert_id=alert.id, actor=op)
        alerts.approve_alert(s, alert_id=alert.id, approver=apv, production=False)
        plan_alert(s, alert_id=alert.id)
        draft = alerts.create_alert(s, data=AlertCreate(**payload), author=op, sender="bpbd@sleman")
        return {"alert": alert.id, "draft": draft.id, "op": op.id, "apv": apv.id, "sub": subs[0]}


def sleman_reference(w: World, alert_id: int) -> str:
    with session_scope(w.engine) as s:
        return alerts.capmap.reference_of(s.get(Alert, alert_id))


def state_of(w: World, alert_id: int) -> str:
    with w.engine.connect() as c:
        return str(c.scalar(sa.select(Alert.state).where(Alert.id == alert_id)))


def problem(r) -> str:  # type: ignore[no-untyped-def]
    return str(r.json().get("type")) if r.headers.get("content-type", "").startswith("application/problem") else ""


def refused(w: World, record, attack: str, call, rule: str = "/problems/outside-jurisdiction"):  # type: ignore[no-untyped-def]
    """Run `call`; it must answer 403 naming `rule` and change no row anywhere."""
    before = w.counts()
    r = call()
    after = w.counts()
    ok = r.status_code == 403 and problem(r) == rule and before == after
    record("authority", attack, f"{r.status_code} {problem(r)}" + ("" if before == after else " (rows changed)"),
           ok=ok)
    assert r.status_code == 403 and problem(r) == rule, r.text[:400]
    assert before == after, {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    return r


# --------------------------------------------------------------------------- CAP import follow-ups


def test_cap_import_update_and_cancel_of_another_kabupaten_are_refused(db_url, redis_url, engine, record):
    with world(db_url, redis_url, engine) as w:
        sleman = sleman_world(w)
        ref = sleman_reference(w, sleman["alert"])
        xml = {"Content-Type": "application/xml", **w.headers("operator")}
        for msg_type in ("Update", "Cancel"):
            # Palu's own area, but `references` names Sleman's published alert: a follow-up of it.
            doc = cap_doc(f"SERANG-{msg_type}-{secrets.token_hex(3)}", msg_type=msg_type, references=ref)
            refused(w, record, f"CAP import {msg_type} of another kabupaten's alert (API)",
                    lambda doc=doc: w.client.post("/api/v1/cap/import", content=doc, headers=xml))
            assert state_of(w, sleman["alert"]) == "published"
        doc = cap_doc(f"SERANG-area-{secrets.token_hex(3)}", code="34.04")
        refused(w, record, "CAP import of an alert for another kabupaten (API)",
                lambda: w.client.post("/api/v1/cap/import", content=doc, headers=xml))
        # The importer's own area is imported, but the claimed sender is not taken as written.
        doc = cap_doc(f"MILIK-PALU-{secrets.token_hex(3)}", sender="bpbd@sleman.example")
        r = w.client.post("/api/v1/cap/import", content=doc, headers=xml)
        sender = None
        if r.status_code == 201:
            with session_scope(w.engine) as s:
                sender = s.get(Alert, r.json()["imported"][0]).sender
        ok = r.status_code == 201 and sender == w.settings.sender_id
        record("authority", "CAP import claiming another agency's sender",
               "sender replaced" if ok else f"{r.status_code}, sender {sender!r}", ok=ok)
        assert r.status_code == 201, r.text
        assert sender == w.settings.sender_id


def test_cap_import_update_across_jurisdictions_is_refused_by_the_cli(sqlite_dbs, tmp_path, record):
    url = sqlite_dbs.fresh()
    engine = make_engine(url)
    try:
        with session_scope(engine) as s:
            make_user(s, "op.palu", Role.OPERATOR, "72.71")
            op = make_user(s, "op.sleman", Role.OPERATOR, "34.04")
            apv = make_user(s, "apv.diy", Role.APPROVER, "34")
            alert = alerts.create_alert(s, data=AlertCreate(**alert_payload("Exercise", codes=["34.04"])),
                                        author=op, sender="bpbd@sleman")
            alerts.submit_alert(s, alert_id=alert.id, actor=op)
            alerts.approve_alert(s, alert_id=alert.id, approver=apv, production=False)
            plan_alert(s, alert_id=alert.id)
            ref, original = alerts.capmap.reference_of(alert), alert.id
        with engine.connect() as c:
            before = c.scalar(sa.select(sa.func.count()).select_from(Alert))
        for msg_type in ("Update", "Cancel"):
            path = tmp_path / f"{msg_type}.xml"
            path.write_bytes(cap_doc(f"CLI-{msg_type}", msg_type=msg_type, references=ref))
            res = subprocess.run([broadcast_exe(), "cap", "import", str(path), "--author", "op.palu", "--no-fetch"],
                                 env=clean_env(BROADCAST_DATABASE_URL=url), capture_output=True, text=True,
                                 timeout=120, cwd=tmp_path)
            ok = res.returncode == 3 and "outside-jurisdiction" in res.stdout
            record("authority", f"CAP import {msg_type} of another kabupaten's alert (CLI)",
                   f"exit {res.returncode}", ok=ok)
            assert ok, res.stdout + res.stderr
        with engine.connect() as c:
            assert c.scalar(sa.select(sa.func.count()).select_from(Alert)) == before
            assert c.scalar(sa.select(Alert.state).where(Alert.id == original)) == "published"
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- drawn slivers and boxes


def test_sliver_multipolygon_in_another_kabupaten_is_refused_and_reaches_nobody(db_url, redis_url, engine, record):
    slivers = sleman_slivers()
    # The old rule let this through: 48 m² outside is under its noise floor.
    jurisdiction.check_within("72.71", slivers, allow_sea=True)
    with world(db_url, redis_url, engine) as w:
        sleman_world(w)
        payload = alert_payload("Exercise", areas=[{"area_desc": "Palu", "geocodes": ["72.71"],
                                                    "geometry": mapping(slivers)}])
        r = refused(w, record, "sliver MultiPolygon (3 x 16 m²) in another kabupaten",
                    lambda: w.client.post("/api/v1/alerts", json=payload, headers=w.headers("operator")))
        body = r.json()
        assert len(body["refused"]) == 3 and all("34.04" in line for line in body["refused"])
        # The composer says the same before anything is saved.
        spec = {"geocodes": ["72.71"], "geometry": mapping(slivers)}
        r = refused(w, record, "sliver MultiPolygon in the composer",
                    lambda: w.client.post("/api/v1/areas/resolve", json=spec, headers=w.headers("operator")))
        assert "bagian" in r.json()["detail"] and "part" in r.json()["detail"]
    # Nor would it reach a Sleman subscriber known only by its desa code: a code matches by containment.
    subs = SubscriberArrays(np.array([1]), np.array([np.nan]), np.array([np.nan]), np.array([SLEMAN_DESA]),
                            np.array(["id"]), {"sms": np.array([True]), "social": np.array([False])})
    assert subs.match(TargetSpec((), slivers)).size == 0


def test_a_110_m_box_across_the_border_is_refused_and_never_reaches_a_kabupaten_subscriber(
    db_url, redis_url, engine, record
):
    lon, lat = DONGGALA_NEAR_PALU
    box = metric_box(lon, lat, 110)
    jurisdiction.check_within("72.71", box, allow_sea=True)  # inside the old 300 m tolerance
    with world(db_url, redis_url, engine) as w:
        payload = alert_payload("Exercise", areas=[{"area_desc": "Kotak", "geometry": mapping(box)}])
        refused(w, record, "110 m box inside the neighbouring kabupaten (within the border tolerance)",
                lambda: w.client.post("/api/v1/alerts", json=payload, headers=w.headers("operator")))
        # Donggala's own operator may draw it, and it reaches points inside it, never everyone registered for
        # the whole kabupaten (72.03) or a desa it merely touches.
        with session_scope(w.engine) as s:
            op = make_user(s, "op.donggala", Role.OPERATOR, "72.03")
            inside = subscribers.add_subscriber(s, phone="+6281344400001", lon=lon, lat=lat).id
            alert = alerts.create_alert(s, data=AlertCreate(**payload), author=op, sender="bpbd@donggala")
            alerts.submit_alert(s, alert_id=alert.id, actor=op)
            alerts.approve_alert(s, alert_id=alert.id, approver=s.get(User, w.users["approver"]), production=False)
            plan_alert(s, alert_id=alert.id)
            got = set(s.scalars(sa.select(Delivery.subscriber_id).where(Delivery.alert_id == alert.id,
                                                                         Delivery.channel == "sms")))
        kabupaten_level = w.subscribers["donggala"][1]
        ok = inside in got and kabupaten_level not in got and not got & set(w.subscribers["palu"])
        record("authority", "110 m box reaching a kabupaten-level subscriber", "not reached" if ok else "REACHED",
               ok=ok)
        assert ok, got


def test_fan_out_never_reaches_outside_the_approvers_jurisdiction(db_url, redis_url, engine, record):
    """By construction: even an alert stored before these rules (a Sleman sliver in a Palu alert) plans no
    recipient outside the jurisdiction of the person who approved it."""
    with world(db_url, redis_url, engine) as w:
        sleman = sleman_world(w)
        with session_scope(w.engine) as s:
            op, apv = s.get(User, w.users["operator"]), s.get(User, w.users["approver"])
            alert = alerts.create_alert(s, data=AlertCreate(**alert_payload("Exercise")), author=op, sender="t")
            # Written straight into the row, as an old release or a database edit could have left it.
            alert.areas.append(AlertArea(area_desc="sliver", geocodes=[SLEMAN_DESA],
                                         target_geometry=mapping(sleman_slivers())))
            alert.state, alert.approver_id = "approved", apv.id
            s.flush()
            plan_alert(s, alert_id=alert.id)
            got = set(s.scalars(sa.select(Delivery.subscriber_id).where(Delivery.alert_id == alert.id)))
        ok = sleman["sub"] not in got and set(w.subscribers["palu"]) <= got
        record("authority", "stored alert reaching outside the approver's jurisdiction", "held to it", ok=ok)
        assert ok, got


# --------------------------------------------------------------------------- triage and reads


def _sleman_report_and_incident(w: World) -> tuple[int, int]:
    with session_scope(w.engine) as s:
        s.add(ReplyContact(author_hash="h-sleman", phone="+6281355599999", language="id"))
        report = Report(source="sms", external_id="SM-sleman-1", raw={}, text="LAPOR banjir", author_hash="h-sleman",
                        admin_code=SLEMAN_DESA, hazard="banjir", state="new")
        now = utcnow()
        incident = Incident(hazard="banjir", lat=SLEMAN_POINT[1], lon=SLEMAN_POINT[0], admin_code=SLEMAN_DESA,
                            kecamatan_code="34.04.01", first_at=now, last_at=now, report_count=1)
        s.add_all([report, incident])
        s.flush()
        report.incident_id = incident.id
        return report.id, incident.id


def test_triage_of_another_kabupatens_reports_and_incidents_is_refused(db_url, redis_url, engine, record):
    with world(db_url, redis_url, engine) as w:
        report_id, incident_id = _sleman_report_and_incident(w)
        h = w.headers("operator")
        for path, body in (
            (f"/api/v1/reports/{report_id}/state", {"state": "verified"}),
            (f"/api/v1/reports/{report_id}/triage", {"note": "diambil alih"}),
            (f"/api/v1/incidents/{incident_id}/state", {"state": "actioned"}),
            (f"/api/v1/incidents/{incident_id}/triage", {"note": "diambil alih"}),
            (f"/api/v1/incidents/{incident_id}/draft-alert", {}),
        ):
            refused(w, record, f"triage across jurisdictions: POST {path.split('/')[3]}/…/{path.split('/')[-1]}",
                    lambda path=path, body=body: w.client.post(path, json=body, headers=h))
        assert w.count(TrustReply) == 0  # no SMS to a Sleman citizen


def test_reads_of_another_kabupaten_are_refused_and_lists_are_scoped(db_url, redis_url, engine, record):
    with world(db_url, redis_url, engine) as w:
        sleman = sleman_world(w)
        report_id, incident_id = _sleman_report_and_incident(w)
        h = w.headers("operator")
        for path in (
            f"/api/v1/alerts/{sleman['draft']}",
            f"/api/v1/alerts/{sleman['draft']}/previews",
            f"/api/v1/alerts/{sleman['draft']}/cap",
            f"/api/v1/alerts/{sleman['alert']}/audit",
            f"/api/v1/alerts/{sleman['alert']}/outbox",
            f"/api/v1/reports/{report_id}",
            f"/api/v1/incidents/{incident_id}",
            f"/api/v1/subscribers/{sleman['sub']}",
        ):
            refused(w, record, f"cross-jurisdiction read: GET {re.sub(r'/[0-9]+', '/{id}', path)}",
                    lambda path=path: w.client.get(path, headers=h))
        listed = {a["id"] for a in w.client.get("/api/v1/alerts", headers=h).json()}
        reports = {r["id"] for r in w.client.get("/api/v1/reports", headers=h).json()}
        incidents = {i["id"] for i in w.client.get("/api/v1/incidents", headers=h).json()}
        export = w.client.get("/api/v1/reports/export.csv", headers=h)
        rows = csv.DictReader(io.StringIO(export.text.lstrip("\ufeff"))) if export.status_code == 200 else []
        exported = {row.get("id") for row in rows}
        scoped = {
            "alerts": sleman["draft"] not in listed and sleman["alert"] in listed,
            "reports": report_id not in reports,
            "incidents": incident_id not in incidents,
            "export": export.status_code == 200 and str(report_id) not in exported,
        }
        leaked = [k for k, v in scoped.items() if not v]
        record("authority", "cross-jurisdiction lists (alerts, reports, incidents, export)",
               "scoped" if not leaked else "LEAKED: " + ", ".join(leaked), ok=not leaked, tries=len(scoped))
        assert sleman["draft"] not in listed and sleman["alert"] in listed  # published alerts are public anyway
        assert report_id not in reports
        assert incident_id not in incidents
        assert export.status_code == 200 and str(report_id) not in exported, export.text[:400]
        # Analysts read aggregates, not phone numbers.
        refused(w, record, "analyst reading an outbox with phone numbers",
                lambda: w.client.get(f"/api/v1/alerts/{sleman['alert']}/outbox", headers=w.headers("analyst")),
                rule="/problems/role-not-allowed")
        refused(w, record, "analyst listing subscribers",
                lambda: w.client.get("/api/v1/subscribers", headers=w.headers("analyst")),
                rule="/problems/role-not-allowed")


# --------------------------------------------------------------------------- two people


def test_an_analyst_cannot_publish_a_clarification_alone(db_url, redis_url, engine, record):
    with world(db_url, redis_url, engine) as w:
        with session_scope(w.engine) as s:
            hoax = HoaxReport(source="web", external_id="hx-1", text="Tsunami jam 3, sebarkan!")
            s.add(hoax)
            s.flush()
            hoax_id = hoax.id
        w.client.post("/masuk", data=login_form(w.client, "analis"))
        csrf = w.client.cookies.get("broadcast_csrf")
        r = w.client.post("/konsol/hoaks/klarifikasi", follow_redirects=False,
                          data={"hoax_ids": [str(hoax_id)], "title_id": "Hoaks", "body_id": "Tidak benar.",
                                "csrf": csrf})
        assert r.status_code == 303 and r.headers["location"] == "/konsol/hoaks"
        with session_scope(w.engine) as s:
            (page,) = trust.pending_clarifications(s)
            page_id, slug = page.id, page.slug
        assert w.client.get(f"/klarifikasi/{slug}").status_code == 404  # nothing public yet
        assert w.count(TrustReply) == 0
        refused(w, record, "analyst approving a clarification", rule="/problems/role-not-allowed",
                call=lambda: w.client.post(f"/konsol/hoaks/klarifikasi/{page_id}/setujui", data={"csrf": csrf},
                                           follow_redirects=False))
        w.client.cookies.clear()
        # An approver who submitted a clarification cannot approve or reject it: a second person must.
        with session_scope(w.engine) as s:
            other = HoaxReport(source="web", external_id="hx-2", text="Bantuan lima juta, klik tautan")
            s.add(other)
            s.flush()
            own = trust.submit_clarification(s, hoax_ids=[other.id], title_id="Penipuan", body_id="Jangan klik.",
                                             actor=s.get(User, w.users["approver"]))
            own_id = own.id
        w.client.post("/masuk", data=login_form(w.client, "apv.sulteng"))
        csrf = w.client.cookies.get("broadcast_csrf")
        for verb in ("setujui", "tolak"):
            refused(w, record, f"submitter of a clarification: {verb}", rule="/problems/two-person-rule",
                    call=lambda verb=verb: w.client.post(f"/konsol/hoaks/klarifikasi/{own_id}/{verb}",
                                                         data={"csrf": csrf}, follow_redirects=False))
        # The analyst's one, approved by a second person, is published.
        r = w.client.post(f"/konsol/hoaks/klarifikasi/{page_id}/setujui", data={"csrf": csrf}, follow_redirects=False)
        assert r.status_code == 303 and w.client.get(r.headers["location"]).status_code == 200


def test_a_submitter_cannot_reject_their_own_submission(db_url, redis_url, engine, record):
    with world(db_url, redis_url, engine) as w:
        draft = w.client.post("/api/v1/alerts", json=alert_payload("Exercise"), headers=w.headers("operator")).json()
        # The provincial approver submits the operator's draft, then tries to reject what they submitted.
        r = w.client.post(f"/api/v1/alerts/{draft['id']}/submit", headers=w.headers("approver"))
        assert r.status_code == 200, r.text
        refused(w, record, "submitter rejecting their own submission", rule="/problems/two-person-rule",
                call=lambda: w.client.post(f"/api/v1/alerts/{draft['id']}/reject", json={"reason": "uji tolak"},
                                           headers=w.headers("approver")))
        refused(w, record, "submitter approving their own submission", rule="/problems/two-person-rule",
                call=lambda: w.client.post(f"/api/v1/alerts/{draft['id']}/approve", headers=w.headers("approver")))
        assert state_of(w, draft["id"]) == "submitted"


# --------------------------------------------------------------------------- one public truth


def _sms_cek(w: World, code: str) -> str:
    with session_scope(w.engine) as s:
        sid = "SM" + secrets.token_hex(16)
        event = InboundEvent("sms", sid, "+6281377700001", f"CEK {code}", {"Body": f"CEK {code}", "MessageSid": sid})
        return handle_inbound_sms(s, event=event, author_key=b"k" * 32, advanced_opt_out=False,
                                  public_base_url="http://t")


def _current_section(html: str) -> str:
    return html.split("Peringatan aktif", 1)[1].split("Riwayat", 1)[0]


def test_publish_update_cancel_every_public_surface_says_the_same(db_url, redis_url, engine, record):
    headlines = {"original": "Banjir di Kota Palu", "update": "Banjir meluas ke Palu Barat"}
    with world(db_url, redis_url, engine) as w:
        with session_scope(w.engine) as s:
            op, apv = s.get(User, w.users["operator"]), s.get(User, w.users["approver"])
            alert = alerts.create_alert(s, data=AlertCreate(**alert_payload("Exercise")), author=op, sender="t")
            alerts.submit_alert(s, alert_id=alert.id, actor=op)
            alerts.approve_alert(s, alert_id=alert.id, approver=apv, production=False)
            plan_alert(s, alert_id=alert.id)
            ids = {"original": alert.id}
            codes = {"original": alert.verify_code}
            identifiers = {"original": alert.identifier}

        def follow(kind: str, msg_type: MsgType, reason: str) -> None:
            with session_scope(w.engine) as s:
                op, apv = s.get(User, w.users["operator"]), s.get(User, w.users["approver"])
                base = ids["update"] if "update" in ids else ids["original"]
                f = alerts.create_follow_up(s, original_id=base, actor=op, msg_type=msg_type, reason=reason)
                if kind == "update":
                    f.infos[0].headline = headlines["update"]
                alerts.submit_alert(s, alert_id=f.id, actor=op)
                alerts.approve_alert(s, alert_id=f.id, approver=apv, production=False)
                plan_alert(s, alert_id=f.id)
                ids[kind], codes[kind], identifiers[kind] = f.id, f.verify_code, f.identifier

        def surfaces() -> dict[str, object]:
            c = w.client
            area = c.get("/wilayah/72.71").text
            data = c.get("/api/public/alerts", params={"status": "all"}).json()["alerts"]
            with session_scope(w.engine) as s:
                linked = [a.id for a in alerts.current_for_area(s, code="72.71.01.1004", limit=5)]
            out: dict[str, object] = {
                "area page active": [k for k, h in headlines.items() if h in _current_section(area)],
                "home": [k for k, h in headlines.items() if h in c.get("/", params={"status": "all"}).text],
                "json active": sorted(a["identifier"] for a in data if a["public_state"]["key"] == "active"),
                "report linking": linked,
            }
            for kind, code in codes.items():
                page = c.get("/cek", params={"kode": code}).text
                out[f"/cek {kind}"] = re.search(r'class="state state-(\w+)"', page).group(1)
                out[f"SMS CEK {kind}"] = next(k for k in ("AKTIF", "DIPERBARUI", "DIBATALKAN", "KEDALUWARSA")
                                              if k in _sms_cek(w, code))
                out[f"page {kind}"] = next((k for k in ("DIBATALKAN", "DIPERBARUI") if k in
                                            c.get(f"/peringatan/{identifiers[kind]}").text), "AKTIF")
            return out

        steps = {
            "published": {"area page active": ["original"], "home": ["original"],
                          "json active": [identifiers["original"]],
                          "report linking": [ids["original"]], "/cek original": "active",
                          "SMS CEK original": "AKTIF", "page original": "AKTIF"},
        }
        got = surfaces()
        check = {k: got[k] for k in steps["published"]}
        assert check == steps["published"], got

        follow("update", MsgType.UPDATE, "Meluas")
        got = surfaces()
        want = {"area page active": ["update"], "home": ["update"], "json active": [identifiers["update"]],
                "report linking": [ids["update"]], "/cek original": "updated", "SMS CEK original": "DIPERBARUI",
                "page original": "DIPERBARUI", "/cek update": "active", "SMS CEK update": "AKTIF",
                "page update": "AKTIF"}
        assert {k: got[k] for k in want} == want, got

        follow("cancel", MsgType.CANCEL, "Air sudah surut")
        got = surfaces()
        want = {"area page active": [], "home": [], "json active": [], "report linking": []}
        want |= {f"/cek {k}": "cancelled" for k in ("original", "update", "cancel")}
        want |= {f"SMS CEK {k}": "DIBATALKAN" for k in ("original", "update", "cancel")}
        want |= {f"page {k}": "DIBATALKAN" for k in ("original", "update", "cancel")}
        ok = {k: got[k] for k in want} == want
        record("public truth", "publish → update → cancel on pages, feeds, JSON, /cek, SMS CEK, report linking, webhooks",
               "one state everywhere" if ok else "DISAGREE", ok=ok)
        assert ok, got
        area = w.client.get("/wilayah/72.71").text
        assert "Tidak ada peringatan aktif" in _current_section(area)
        history = area.split("Riwayat", 1)[1]
        assert "DIBATALKAN" in history and "Air sudah surut" in history
        assert "Air sudah surut" in w.client.get(f"/peringatan/{identifiers['original']}").text
        # A partner webhook for the Update, (re)sent after the Cancel, says where the chain stands now.
        with session_scope(w.engine) as s:
            partners.register(s, name="Mitra", url="https://partner.example/hook", statuses=["Exercise"],
                              area_code="72.71", actor_id=w.users["admin"])
            (delivery_id,) = partners.plan_for_alert(s, alert_id=ids["update"])
            attempt = partners.prepare(s, delivery_id=delivery_id, public_base_url="http://t")
        state = json.loads(attempt.body)["alert"]["public_state"]
        assert state["key"] == "cancelled" and state["reason"] == "Air sudah surut", state

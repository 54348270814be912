"""Subscribers, areas, reach and maps over HTTP (no worker: the consent SMS is sent by tests.consent)."""

import json
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from broadcast.alerts.models import Alert
from broadcast.api.app import create_app
from broadcast.db import session_scope
from broadcast.settings import Settings
from channels.sms import Encoding, sms_segments
from tests.consent import pending_answer, register, reply_sms, send_confirmations
from tests.factories import PASSWORD, alert_payload, make_subscribers, make_team

pytestmark = pytest.mark.integration
BOX = [[119.86, -0.91], [119.88, -0.91], [119.88, -0.89], [119.86, -0.89], [119.86, -0.91]]


@pytest.fixture
def client(db_url, engine, redis_url):
    # Sign-in needs its throttle's store (Redis): without it, it is refused (issue 22).
    settings = Settings(environment="test", database_url=db_url, broker_url=redis_url,
                        secret_key="test-secret-key-123", max_body_bytes=200_000)
    with session_scope(engine) as s:
        make_team(s)
        make_subscribers(s)
    with TestClient(create_app(settings)) as c:
        yield c


def login(client, username):
    r = client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def problem(r, status):
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    return r.json()


def test_register_by_point_locates_the_code_and_normalises_the_phone(client, engine):
    op = login(client, "op.palu")
    body = register(client, engine, op, {"phone": "0812-3456-7890", "lat": -0.90, "lon": 119.87, "language": "en"})
    assert body["phone"] == "+6281234567890" and body["admin_code"] == "72.71.01.1010"
    assert body["channels"] == ["sms"] and body["active"] is True and body["language"] == "en"
    for raw in ("6281234567891", "+62 812 3456 7892"):
        assert register(client, engine, op, {"phone": raw, "admin_code": "72.71.01"})["admin_code"] == "72.71.01"
    # Issue 24: a registered number gets the same 202 as a new one (no 409 telling it is registered); its owner's
    # YA moves their subscription, nothing else does.
    again = pending_answer(client.post("/api/v1/subscribers", json={"phone": "+6281234567890", "admin_code": "72.71"},
                                       headers=op))
    assert again["message"] and send_confirmations(engine) == []  # one SMS per number per day, whoever asks
    with engine.connect() as c:
        assert c.scalar(sa.text("SELECT admin_code FROM subscribers WHERE phone = '+6281234567890'")) == \
            "72.71.01.1010"


def test_consent_sms_reply_expiry_stop_audit_and_change_of_number(client, engine):
    op = login(client, "op.palu")
    pending_answer(client.post("/api/v1/subscribers", json={"phone": "081234567800", "admin_code": "72.71.01.1004"},
                               headers=op))
    with engine.connect() as c:
        assert c.scalar(sa.text("SELECT count(*) FROM subscribers WHERE phone = '+6281234567800'")) == 0
    # Nothing changes before the SMS went out, nor on a YA from a number nobody asked.
    assert "Tidak ada permintaan" in reply_sms(engine, "+6281234567800")
    assert "Tidak ada permintaan" in reply_sms(engine, "+6281234567801")
    [(number, text)] = send_confirmations(engine)
    assert number == "+6281234567800"
    assert text.startswith("BPBD Kota Palu minta izin kirim peringatan bencana untuk Besusu Barat")
    assert "Balas YA" in text and "abaikan" in text and " / Reply YA" in text
    assert sms_segments(text).encoding is Encoding.GSM7 and sms_segments(text).segments <= 2
    assert "Terima kasih" in reply_sms(engine, "+6281234567800")
    assert "Tidak ada permintaan" in reply_sms(engine, "+6281234567800")  # a second YA changes nothing
    with engine.connect() as c:
        sub_id, code = c.execute(sa.text("SELECT id, admin_code FROM subscribers WHERE phone = '+6281234567800'")).one()
        entry = c.execute(sa.text("SELECT actor_id, action, after FROM audit_log WHERE subject_type = 'subscriber' "
                                  "AND subject_id = :i ORDER BY id"), {"i": sub_id}).all()
        op_id = c.scalar(sa.text("SELECT id FROM users WHERE username = 'op.palu'"))
    assert code == "72.71.01.1004"
    [(actor, action, after)] = entry
    after = after if isinstance(after, dict) else json.loads(after)
    assert actor == op_id and action == "subscriber.create" and after["requested_by"] == op_id
    assert after["consent"]["by"] == "sms" and after["consent"]["reply"] == "YA"
    # An expired request changes nothing either.
    pending_answer(client.post("/api/v1/subscribers", json={"phone": "081234567810", "admin_code": "72.71"},
                               headers=op))
    assert len(send_confirmations(engine)) == 1
    with engine.begin() as c:
        c.execute(sa.text("UPDATE subscriber_consents SET expires_at = :t"),
                  {"t": datetime(2020, 1, 1, tzinfo=UTC)})
    assert "kedaluwarsa" in reply_sms(engine, "+6281234567810")
    assert "Tidak ada permintaan" in reply_sms(engine, "+6281234567810")
    # BERHENTI withdraws a waiting request: a later YA changes nothing.
    pending_answer(client.post("/api/v1/subscribers", json={"phone": "081234567811", "admin_code": "72.71"},
                               headers=op))
    assert len(send_confirmations(engine)) == 1
    reply_sms(engine, "+6281234567811", "BERHENTI")
    assert "Tidak ada permintaan" in reply_sms(engine, "+6281234567811")
    with engine.connect() as c:
        assert c.scalar(sa.text("SELECT count(*) FROM subscribers WHERE phone IN ('+6281234567810', "
                                "'+6281234567811')")) == 0
    # A change of number waits for the new number's consent; the other changes come with it.
    sid = register(client, engine, op, {"phone": "081234567820", "admin_code": "72.71"})["id"]
    r = client.patch(f"/api/v1/subscribers/{sid}", json={"phone": "081234567821", "language": "en"}, headers=op)
    pending_answer(r)
    assert client.get(f"/api/v1/subscribers/{sid}", headers=op).json()["phone"] == "+6281234567820"
    assert [n for n, _ in send_confirmations(engine)] == ["+6281234567821"]
    assert "Terima kasih" in reply_sms(engine, "+6281234567821")
    moved = client.get(f"/api/v1/subscribers/{sid}", headers=op).json()
    assert moved["phone"] == "+6281234567821" and moved["language"] == "en"
    # The same number again is a plain change (200).
    same = client.patch(f"/api/v1/subscribers/{sid}", json={"phone": "0812-3456-7821", "language": "id"}, headers=op)
    assert same.status_code == 200 and same.json()["language"] == "id"


@pytest.mark.parametrize(("body", "code"), [
    ({"phone": "12345", "admin_code": "72.71"}, "invalid-phone"),
    ({"phone": "081234567899"}, "missing-location"),
    ({"phone": "081234567899", "admin_code": "99.99"}, "unknown-area-code"),
    ({"phone": "081234567899", "lat": 48.85, "lon": 2.35}, "outside-indonesia"),
    ({"phone": "081234567899", "lat": -0.9}, "bad-location"),
    ({"phone": "081234567899", "admin_code": "72.71", "channels": ["social"]}, "bad-x-handle"),
    ({"phone": "081234567899", "admin_code": "72.71", "channels": ["fax"]}, "validation"),
])
def test_invalid_subscribers_are_refused(client, engine, body, code):
    op = login(client, "op.palu")
    with engine.connect() as c:
        before = c.scalar(sa.text("SELECT count(*) FROM subscribers"))
    assert problem(client.post("/api/v1/subscribers", json=body, headers=op), 422)["type"] == f"/problems/{code}"
    with engine.connect() as c:
        assert c.scalar(sa.text("SELECT count(*) FROM subscribers")) == before
        assert c.scalar(sa.text("SELECT count(*) FROM subscriber_consents")) == 0


def test_roles_and_jurisdiction(client, engine):
    analyst, grobogan, admin = login(client, "analis"), login(client, "op.grobogan"), login(client, "admin")
    new = {"phone": "081234560001", "admin_code": "72.71.01.1004"}
    assert problem(client.post("/api/v1/subscribers", json=new, headers=analyst), 403)["type"] == \
        "/problems/role-not-allowed"
    assert problem(client.post("/api/v1/subscribers", json=new, headers=grobogan), 403)["type"] == \
        "/problems/outside-jurisdiction"
    point_in_palu = {"phone": "081234560002", "lat": -0.9, "lon": 119.87}
    problem(client.post("/api/v1/subscribers", json=point_in_palu, headers=grobogan), 403)
    sid = register(client, engine, admin, new)["id"]
    problem(client.patch(f"/api/v1/subscribers/{sid}", json={"language": "en"}, headers=grobogan), 403)
    problem(client.post(f"/api/v1/subscribers/{sid}/stop", headers=analyst), 403)
    # Issue 18: phone numbers are for authors and approvers in the jurisdiction; analysts read aggregates.
    assert problem(client.get(f"/api/v1/subscribers/{sid}", headers=analyst), 403)["type"] == \
        "/problems/role-not-allowed"
    assert problem(client.get("/api/v1/subscribers", headers=analyst), 403)["type"] == "/problems/role-not-allowed"
    assert problem(client.get(f"/api/v1/subscribers/{sid}", headers=grobogan), 403)["type"] == \
        "/problems/outside-jurisdiction"
    assert client.get(f"/api/v1/subscribers/{sid}", headers=admin).json()["admin_code"] == "72.71.01.1004"
    problem(client.get("/api/v1/subscribers/999999", headers=admin), 404)


def test_list_filter_paging_patch_and_stop(client):
    op, analyst = login(client, "op.palu"), login(client, "admin")  # national staff who may read phone numbers
    page = client.get("/api/v1/subscribers", params={"code": "72.71", "limit": 3}, headers=analyst).json()
    assert page["total"] == 4 and len(page["items"]) == 3
    rest = client.get("/api/v1/subscribers", params={"code": "72.71", "limit": 3, "offset": 3},
                      headers=analyst).json()
    assert len(rest["items"]) == 1
    assert {s["id"] for s in page["items"]}.isdisjoint({s["id"] for s in rest["items"]})
    assert client.get("/api/v1/subscribers", params={"code": "72.03.04"}, headers=analyst).json()["total"] == 1
    problem(client.get("/api/v1/subscribers", params={"code": "palu"}, headers=analyst), 422)
    sid = page["items"][0]["id"]
    r = client.patch(f"/api/v1/subscribers/{sid}", json={"lat": -0.85, "lon": 119.88, "channels": ["sms", "social"],
                                                       "x_handle": "@warga"}, headers=op)
    assert r.status_code == 200, r.text
    assert r.json()["admin_code"].startswith("72.71.") and r.json()["x_handle"] == "warga"
    stopped = client.post(f"/api/v1/subscribers/{sid}/stop", headers=op).json()
    assert stopped["active"] is False and stopped["stopped_at"]
    assert client.get("/api/v1/subscribers", params={"code": "72.71", "active": True},
                      headers=analyst).json()["total"] == 3


def test_drawn_alert_invalid_geometry_is_422_with_the_geo_code(client, engine):
    op = login(client, "op.palu")
    bad = alert_payload("Exercise", areas=[{"area_desc": "x", "geometry": {"type": "Polygon",
                                                                           "coordinates": [BOX[:-1]]}}])
    body = problem(client.post("/api/v1/alerts", json=bad, headers=op), 422)
    assert body["type"] == "/problems/unclosed-ring" and " / " in body["detail"]
    empty = alert_payload("Exercise", areas=[{"area_desc": "x"}])
    assert problem(client.post("/api/v1/alerts", json=empty, headers=op), 422)["type"] == "/problems/validation"
    with engine.connect() as c:
        assert c.scalar(sa.select(sa.func.count()).select_from(Alert)) == 0


def test_reach_preview_and_maps(client, engine):
    op, analyst = login(client, "op.palu"), login(client, "analis")
    register(client, engine, op, {"phone": "081234560010", "lat": -0.90, "lon": 119.87})
    payload = alert_payload("Exercise", areas=[{"area_desc": "Pusat Palu",
                                                "geometry": {"type": "Polygon", "coordinates": [BOX]}}])
    alert_id = client.post("/api/v1/alerts", json=payload, headers=op).json()["id"]
    reach = client.get(f"/api/v1/alerts/{alert_id}/reach", headers=analyst).json()
    # Issue 18: the new point only; subscribers known by a desa or kabupaten code that merely overlaps the box are
    # not reached (a code is reached when it lies inside the area).
    assert reach["subscribers"]["sms"] == 1 and reach["subscribers"]["outside_jurisdiction"] == 0
    assert "social" not in reach["subscribers"] or reach["subscribers"]["social"] == 0
    assert reach["population"] > 0 and reach["by_kabupaten"][0]["kode"] == "72.71"
    preview = client.get(f"/api/v1/alerts/{alert_id}/preview", headers=op).json()
    assert preview["reach"] == reach and preview["sms"]
    gj = client.get(f"/api/v1/alerts/{alert_id}/map.geojson", headers=analyst)
    assert gj.status_code == 200 and gj.headers["content-type"].startswith("application/geo+json")
    roles = {f["properties"]["role"]: f for f in gj.json()["features"]}
    assert gj.json()["type"] == "FeatureCollection" and set(roles) == {"target", "cap"}
    assert roles["target"]["geometry"]["type"] in ("Polygon", "MultiPolygon")
    png = client.get(f"/api/v1/alerts/{alert_id}/map.png", headers=analyst)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")
    code_alert = client.post("/api/v1/alerts", json=alert_payload("Exercise"), headers=op).json()["id"]
    coded = client.get(f"/api/v1/alerts/{code_alert}/reach", headers=analyst).json()
    assert coded["subscribers"]["sms"] == 5  # the four registered by code in Palu and the new point
    assert [f["properties"]["role"] for f in client.get(f"/api/v1/alerts/{code_alert}/map.geojson",
                                                         headers=analyst).json()["features"]] == ["target"]
    problem(client.get("/api/v1/alerts/999999/map.png", headers=analyst), 404)


def test_area_resolve_for_the_composer(client):
    op, grobogan = login(client, "op.palu"), login(client, "op.grobogan")
    r = client.post("/api/v1/areas/resolve", json={"geometry": {"type": "Polygon", "coordinates": [BOX]},
                                                   "geocodes": ["72.71.03"]}, headers=op)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["target"]["type"] in ("Polygon", "MultiPolygon") and body["codes"] == ["72.71.03"]
    assert len(body["cap_polygons"]) == 1 and 4 <= body["cap_polygons"][0]["vertices"] <= 100
    assert body["overshoot_m"] is not None and body["overshoot_m"] <= 161 and body["overshoot_target_met"]
    # Nobody is registered under 72.71.03; the desa and kabupaten codes that only overlap the box are not reached.
    assert body["reach"]["population"] > 0 and body["reach"]["subscribers"]["sms"] == 0
    circle = client.post("/api/v1/areas/resolve", json={"cap_circle": "-0.9,119.87 2"}, headers=op).json()
    assert circle["cap_circles"] == [{"lat": -0.9, "lon": 119.87, "radius_km": 2.0}] and circle["cap_polygons"] == []
    assert problem(client.post("/api/v1/areas/resolve", json={"cap_circle": "-0.9,119.87 2"}, headers=grobogan),
                   403)["type"] == "/problems/outside-jurisdiction"
    assert problem(client.post("/api/v1/areas/resolve", json={"cap_polygon": "1,2 3,4"}, headers=op),
                   422)["type"] == "/problems/too-few-points"


def test_a_change_to_a_number_with_its_own_subscription_merges_them_on_its_owners_ya(client, engine):
    """Staff move subscriber A to a number that already subscribed itself (B). Nothing happens until that number's
    owner says YA; then B takes A's settings and A is stopped (one number, one subscription, no second alert),
    both in the audit trail under the staff member who asked."""
    op = login(client, "op.palu")
    a = register(client, engine, op, {"phone": "081234567830", "admin_code": "72.71.01.1004", "language": "en"})
    b = register(client, engine, op, {"phone": "081234567831", "admin_code": "72.71"})
    with engine.begin() as c:  # B's own confirmation SMS was sent days ago (one SMS per number per day)
        c.execute(sa.text("UPDATE subscriber_consents SET created_at = :t"), {"t": datetime(2026, 1, 1, tzinfo=UTC)})
    pending_answer(client.patch(f"/api/v1/subscribers/{a['id']}", json={"phone": "081234567831"}, headers=op))
    assert client.get(f"/api/v1/subscribers/{a['id']}", headers=op).json()["active"] is True  # nothing yet
    assert [n for n, _ in send_confirmations(engine)] == ["+6281234567831"]
    assert "Terima kasih" in reply_sms(engine, "+6281234567831")

    merged = client.get(f"/api/v1/subscribers/{b['id']}", headers=op).json()
    assert merged["phone"] == "+6281234567831" and merged["active"] is True
    assert merged["admin_code"] == "72.71.01.1004" and merged["language"] == "en"  # A's settings, B's number
    old = client.get(f"/api/v1/subscribers/{a['id']}", headers=op).json()
    assert old["phone"] == "+6281234567830" and old["active"] is False
    with engine.connect() as c:
        active = c.scalar(sa.text("SELECT count(*) FROM subscribers WHERE active AND phone IN "
                                  "('+6281234567830', '+6281234567831')"))
        stop = c.execute(sa.text("SELECT actor_id, action FROM audit_log WHERE subject_type = 'subscriber' "
                                 "AND subject_id = :i ORDER BY id DESC"), {"i": a["id"]}).first()
        op_id = c.scalar(sa.text("SELECT id FROM users WHERE username = 'op.palu'"))
    assert active == 1
    assert stop is not None and stop.actor_id == op_id and stop.action.startswith("subscriber.")

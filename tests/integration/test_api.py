"""The HTTP API: auth, roles, the lifecycle, and bad input that must change nothing."""

import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from broadcast.alerts.models import Alert
from broadcast.api.app import create_app
from broadcast.audit.models import AuditEntry
from broadcast.db import session_scope
from broadcast.settings import Settings
from tests.factories import PASSWORD, alert_payload, login_form, make_subscribers, make_team

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(db_url, redis_url):
    return Settings(environment="test", database_url=db_url, broker_url=redis_url,
                    secret_key="test-secret-key-123", max_body_bytes=50_000)


@pytest.fixture
def client(settings, engine):
    with session_scope(engine) as s:
        make_team(s)
        make_subscribers(s)
    with TestClient(create_app(settings)) as c:
        c.app_state_db_url = settings.database_url
        yield c


def login(client, username):
    r = client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def counts(engine):
    with engine.connect() as c:
        return (c.scalar(sa.select(sa.func.count()).select_from(Alert)),
                c.scalar(sa.select(sa.func.count()).select_from(AuditEntry)))


def assert_problem(r, status):
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status and body["detail"]
    return body


def test_lifecycle_over_http(client):
    op, apv = login(client, "op.palu"), login(client, "apv.sulteng")
    r = client.post("/api/v1/alerts", json=alert_payload("Exercise"), headers=op)
    assert r.status_code == 201, r.text
    alert_id = r.json()["id"]
    assert client.post(f"/api/v1/alerts/{alert_id}/submit", headers=op).json()["state"] == "submitted"
    body = assert_problem(client.post(f"/api/v1/alerts/{alert_id}/approve", headers=op), 403)
    assert "role" in body["detail"]
    r = client.post(f"/api/v1/alerts/{alert_id}/approve", headers=apv)
    assert r.status_code == 202 and r.json()["state"] == "approved"
    trail = client.get(f"/api/v1/alerts/{alert_id}/audit", headers=apv).json()
    assert [e["action"] for e in trail] == ["alert.create", "alert.submit", "alert.approve"]
    preview = client.get(f"/api/v1/alerts/{alert_id}/preview", headers=op).json()
    assert {p["language"] for p in preview["sms"]} == {"id-ID", "en-US"}


def test_actual_alert_cannot_be_approved_outside_production(client, engine):
    op, apv = login(client, "op.palu"), login(client, "apv.sulteng")
    alert_id = client.post("/api/v1/alerts", json=alert_payload("Actual"), headers=op).json()["id"]
    client.post(f"/api/v1/alerts/{alert_id}/submit", headers=op)
    before = counts(engine)
    body = assert_problem(client.post(f"/api/v1/alerts/{alert_id}/approve", headers=apv), 403)
    assert body["type"] == "/problems/actual-not-allowed-here"
    assert counts(engine) == before
    assert client.get(f"/api/v1/alerts/{alert_id}", headers=op).json()["state"] == "submitted"


def test_admin_who_wrote_an_alert_cannot_approve_it(client, engine):
    adm = login(client, "admin")
    alert_id = client.post("/api/v1/alerts", json=alert_payload(), headers=adm).json()["id"]
    client.post(f"/api/v1/alerts/{alert_id}/submit", headers=adm)
    before = counts(engine)
    body = assert_problem(client.post(f"/api/v1/alerts/{alert_id}/approve", headers=adm), 403)
    assert body["type"] == "/problems/two-person-rule"
    assert counts(engine) == before
    assert client.get(f"/api/v1/alerts/{alert_id}", headers=adm).json()["state"] == "submitted"


def test_unknown_route_is_a_clear_404(client):
    body = assert_problem(client.get("/api/v1/nothing-here"), 404)
    assert "/api/v1/nothing-here" in body["detail"]


def test_wrong_method_is_405(client):
    assert_problem(client.delete("/api/v1/alerts"), 405)


def test_no_token_wrong_password_forged_token(client):
    assert_problem(client.get("/api/v1/alerts"), 401)
    assert_problem(client.post("/api/v1/auth/login", json={"username": "op.palu", "password": "nope"}), 401)
    assert_problem(client.post("/api/v1/auth/login", json={"username": "ghost", "password": "nope"}), 401)
    body = assert_problem(client.get("/api/v1/alerts", headers={"Authorization": "Bearer abc.def"}), 401)
    assert body["type"] == "/problems/invalid-token"


def test_expired_session_is_401(client, monkeypatch):
    headers = login(client, "op.palu")
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 13 * 3600)
    body = assert_problem(client.get("/api/v1/alerts", headers=headers), 401)
    assert body["type"] == "/problems/session-expired"


def test_logout_revokes_the_token(client):
    headers = login(client, "op.palu")
    assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    assert_problem(client.get("/api/v1/alerts", headers=headers), 401)


@pytest.mark.parametrize(
    ("body", "status", "problem"),
    [
        (b"{not json", 400, "malformed-json"),
        (b'{"status": "Actual"}', 422, "validation"),
        (b'{"status": "Imaginary", "channels": ["sms"], "infos": [], "areas": []}', 422, "validation"),
        (b"[]", 422, "validation"),
    ],
)
def test_malformed_or_incomplete_json_writes_nothing(client, engine, body, status, problem):
    op = login(client, "op.palu")
    before = counts(engine)
    r = client.post("/api/v1/alerts", content=body, headers={**op, "Content-Type": "application/json"})
    assert assert_problem(r, status)["type"] == f"/problems/{problem}"
    assert counts(engine) == before


def test_unknown_area_code_and_unknown_field_are_422(client, engine):
    op = login(client, "op.palu")
    before = counts(engine)
    body = assert_problem(client.post("/api/v1/alerts", json=alert_payload(codes=["72.71.99"]), headers=op), 422)
    assert "72.71.99" in body["detail"]
    payload = alert_payload()
    payload["areas"][0]["polygon_wkt"] = "POLYGON EMPTY"
    assert_problem(client.post("/api/v1/alerts", json=payload, headers=op), 422)
    assert counts(engine) == before


def test_outside_jurisdiction_is_403_naming_the_area(client, engine):
    op = login(client, "op.palu")
    before = counts(engine)
    body = assert_problem(client.post("/api/v1/alerts", json=alert_payload(codes=["33.15"]), headers=op), 403)
    assert "33.15" in body["detail"]
    assert counts(engine) == before


def test_analyst_cannot_write_and_operator_cannot_create_users(client, engine):
    before = counts(engine)
    assert_problem(client.post("/api/v1/alerts", json=alert_payload(), headers=login(client, "analis")), 403)
    user = {"username": "new.user", "full_name": "N", "password": "long-enough-pw", "role": "operator"}
    assert_problem(client.post("/api/v1/users", json=user, headers=login(client, "op.palu")), 403)
    assert counts(engine) == before


def test_admin_creates_user_with_validated_jurisdiction(client):
    adm = login(client, "admin")
    user = {"username": "op.sigi", "full_name": "Operator Sigi", "password": "long-enough-pw",
            "role": "operator", "jurisdiction": "72.10"}
    assert client.post("/api/v1/users", json=user, headers=adm).status_code == 201
    assert_problem(client.post("/api/v1/users", json=user, headers=adm), 409)
    bad = {**user, "username": "op.bad", "jurisdiction": "72.10.01"}
    assert_problem(client.post("/api/v1/users", json=bad, headers=adm), 422)
    unknown = {**user, "username": "op.nowhere", "jurisdiction": "99.99"}
    assert_problem(client.post("/api/v1/users", json=unknown, headers=adm), 422)


def test_oversized_body_is_413_and_writes_nothing(client, engine):
    op = login(client, "op.palu")
    payload = alert_payload()
    payload["infos"][0]["description"] = "x" * 60_000
    before = counts(engine)
    assert_problem(client.post("/api/v1/alerts", json=payload, headers=op), 413)

    def chunks():
        yield b'{"status": "Actual", "note": "'
        for _ in range(20):
            yield b"y" * 5000
        yield b'"}'

    r = client.post("/api/v1/alerts", content=chunks(), headers={**op, "Content-Type": "application/json"})
    assert_problem(r, 413)
    assert counts(engine) == before


def test_unpublished_alert_has_no_public_page(client):
    op = login(client, "op.palu")
    created = client.post("/api/v1/alerts", json=alert_payload(), headers=op).json()
    ident = created["identifier"]
    assert client.get(f"/peringatan/{ident}").status_code == 404
    assert client.get(f"/p/{created['id']}", follow_redirects=False).status_code == 404
    assert client.get(f"/cap/{ident}.xml").status_code == 404
    assert ident.encode() not in client.get("/feed/atom.xml").content


def test_web_sign_in_sets_cookie_and_cookie_writes_need_csrf(client, engine):
    r = client.post("/masuk", data=login_form(client, "op.palu", "wrong"))
    assert r.status_code == 401 and "salah" in r.text
    r = client.post("/masuk", data=login_form(client, "op.palu", PASSWORD), follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/konsol"
    assert "httponly" in r.headers.get("set-cookie", "").lower()
    assert client.get("/konsol").status_code == 200
    before = counts(engine)
    assert_problem(client.post("/api/v1/alerts", json=alert_payload()), 403)  # cookie without CSRF header
    assert counts(engine) == before
    csrf = client.cookies.get("broadcast_csrf")
    r = client.post("/api/v1/alerts", json=alert_payload(), headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201


def test_console_redirects_anonymous_users(client):
    r = client.get("/konsol", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/masuk?next=%2Fkonsol"


def test_healthz(client):
    assert client.get("/healthz").json()["status"] == "ok"


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_hazard_templates_over_http(client):
    op = login(client, "op.palu")
    catalog = client.get("/api/v1/hazards", headers=op).json()
    assert "tsunami" in {h["key"] for h in catalog}
    infos = client.post("/api/v1/hazards/tsunami/render", json={"fields": {"wilayah": "Pantai Palu"}},
                        headers=op).json()
    assert [i["language"] for i in infos] == ["id-ID", "en-US"]
    payload = alert_payload("Exercise")
    payload["infos"] = infos
    assert client.post("/api/v1/alerts", json=payload, headers=op).status_code == 201
    assert_problem(client.post("/api/v1/hazards/tsunami/render", json={"fields": {}}, headers=op), 422)
    assert_problem(client.post("/api/v1/hazards/meteor/render", json={"fields": {}}, headers=op), 404)


def test_cap_validate_and_import_over_http(client, engine):
    op = login(client, "op.palu")
    xml = {"Content-Type": "application/cap+xml"}
    good = (FIXTURES / "cap/oasis_examples/a4_amber_alert_multilingual.xml").read_bytes()
    report = client.post("/api/v1/cap/validate", content=good, headers={**op, **xml}).json()
    assert report["valid"] and report["items"][0]["version"] == "1.2"
    bad = (FIXTURES / "cap/invalid/gcl_invalid.cap").read_bytes()
    report = client.post("/api/v1/cap/validate", content=bad, headers={**op, **xml}).json()
    assert not report["valid"] and report["items"][0]["reasons"]
    before = counts(engine)
    body = assert_problem(client.post("/api/v1/cap/import", content=bad, headers={**op, **xml}), 422)
    assert "scope" in body["detail"]
    bomb = b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY b "c">]><alert>&b;</alert>'
    assert_problem(client.post("/api/v1/cap/import", content=bomb, headers={**op, **xml}), 422)
    assert_problem(client.post("/api/v1/cap/import", content=good, headers={**op, "Content-Type": "text/plain"}),
                   422)
    assert counts(engine) == before
    imported = client.post("/api/v1/cap/import", content=good, headers={**op, **xml})
    assert imported.status_code == 201
    alert_id = imported.json()["imported"][0]
    draft = client.get(f"/api/v1/alerts/{alert_id}", headers=op).json()
    assert draft["state"] == "draft" and draft["origin"] == "cap-import" and len(draft["infos"]) == 2
    exported = client.get(f"/api/v1/alerts/{alert_id}/cap", headers=op)
    assert exported.headers["content-type"] == "application/cap+xml"
    assert b"<identifier>KAR0-0306112239-SW</identifier>" in exported.content
    assert_problem(client.post("/api/v1/cap/import", content=good, headers={**op, **xml}), 422)  # already there


def test_follow_ups_over_http(client):
    op, apv = login(client, "op.palu"), login(client, "apv.sulteng")
    alert_id = client.post("/api/v1/alerts", json=alert_payload("Exercise"), headers=op).json()["id"]
    assert_problem(client.post(f"/api/v1/alerts/{alert_id}/cancel", json={"reason": "salah"}, headers=op), 409)
    client.post(f"/api/v1/alerts/{alert_id}/submit", headers=op)
    client.post(f"/api/v1/alerts/{alert_id}/approve", headers=apv)
    with session_scope(sa.create_engine(client.app_state_db_url)) as s:  # publish without a worker
        from broadcast.alerts import service as alerts

        alerts.mark_published(s, alert=alerts.get_alert(s, alert_id=alert_id))
    correction = client.post(f"/api/v1/alerts/{alert_id}/correct", json={"reason": "jam salah"}, headers=op)
    assert correction.status_code == 201 and correction.json()["msg_type"] == "Update"
    cid = correction.json()["id"]
    edited = alert_payload("Exercise")
    edited["infos"][0]["headline"] = "Banjir di Kota Palu (koreksi jam)"
    r = client.put(f"/api/v1/alerts/{cid}", json=edited, headers=op)
    assert r.status_code == 200 and r.json()["infos"][0]["headline"].endswith("(koreksi jam)")
    wrong_status = alert_payload("Test")
    assert_problem(client.put(f"/api/v1/alerts/{cid}", json=wrong_status, headers=op), 409)
    cancel = client.post(f"/api/v1/alerts/{alert_id}/cancel", json={"reason": "Air surut"}, headers=op).json()
    assert cancel["msg_type"] == "Cancel" and cancel["references_alert_id"] == alert_id
    assert_problem(client.post(f"/api/v1/alerts/{alert_id}/cancel", json={}, headers=op), 422)
    assert_problem(client.post("/api/v1/alerts/99999/cancel", json={"reason": "x y z"}, headers=op), 404)


def test_progress_stream_sends_events_until_settled(client, engine):
    from broadcast.alerts import service as alerts_service
    from broadcast.alerts.schemas import AlertCreate
    from broadcast.dispatch.claims import claim
    from broadcast.dispatch.outcomes import record_results
    from broadcast.dispatch.pacing import send_claimed
    from broadcast.dispatch.plan import plan_alert
    from broadcast.users.models import User
    from channels.registry import build_channels

    with session_scope(engine) as s:
        team = {u.username: u for u in s.scalars(sa.select(User))}
        alert = alerts_service.create_alert(s, data=AlertCreate(**alert_payload("Exercise")), author=team["op.palu"],
                                            sender="s")
        alerts_service.submit_alert(s, alert_id=alert.id, actor=team["op.palu"])
        alerts_service.approve_alert(s, alert_id=alert.id, approver=team["apv.sulteng"], production=False)
        alert_id = alert.id
    headers = login(client, "analis")
    with client.stream("GET", f"/api/v1/alerts/{alert_id}/progress/stream?interval_s=0.2", headers=headers) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = r.iter_lines()
        first = next(line for line in lines if line.startswith("event:"))
        assert first == "event: progress"  # approved, not yet planned
        with session_scope(engine) as s:
            planned = plan_alert(s, alert_id=alert_id)
        channels = build_channels(["sms", "social", "web"], modes={}, public_base_url="http://x")
        for ids in planned.values():
            with session_scope(engine) as s:
                batch = claim(s, delivery_ids=ids, lease_s=60, public_base_url="http://x")
            with session_scope(engine) as s:
                record_results(s, sent=send_claimed(batch, channels=channels))
        events = [line for line in lines if line.startswith("event:")]
    assert events[-1] == "event: done"
    assert client.get("/api/v1/alerts/999/progress/stream", headers=headers).status_code == 404

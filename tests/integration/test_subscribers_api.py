"""Subscribers, areas, reach and maps over HTTP (no Redis: nothing here enqueues a task)."""

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from broadcast.alerts.models import Alert
from broadcast.api.app import create_app
from broadcast.db import session_scope
from broadcast.settings import Settings
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


def test_register_by_point_locates_the_code_and_normalises_the_phone(client):
    op = login(client, "op.palu")
    r = client.post("/api/v1/subscribers", json={"phone": "0812-3456-7890", "lat": -0.90, "lon": 119.87,
                                                 "language": "en"}, headers=op)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["phone"] == "+6281234567890" and body["admin_code"] == "72.71.01.1010"
    assert body["channels"] == ["sms"] and body["active"] is True
    for raw in ("6281234567891", "+62 812 3456 7892"):
        assert client.post("/api/v1/subscribers", json={"phone": raw, "admin_code": "72.71.01"},
                           headers=op).status_code == 201
    dup = problem(client.post("/api/v1/subscribers", json={"phone": "+6281234567890", "admin_code": "72.71"},
                              headers=op), 409)
    assert dup["type"] == "/problems/subscriber-exists"


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


def test_roles_and_jurisdiction(client):
    analyst, grobogan, admin = login(client, "analis"), login(client, "op.grobogan"), login(client, "admin")
    new = {"phone": "081234560001", "admin_code": "72.71.01.1004"}
    assert problem(client.post("/api/v1/subscribers", json=new, headers=analyst), 403)["type"] == \
        "/problems/role-not-allowed"
    assert problem(client.post("/api/v1/subscribers", json=new, headers=grobogan), 403)["type"] == \
        "/problems/outside-jurisdiction"
    point_in_palu = {"phone": "081234560002", "lat": -0.9, "lon": 119.87}
    problem(client.post("/api/v1/subscribers", json=point_in_palu, headers=grobogan), 403)
    sid = client.post("/api/v1/subscribers", json=new, headers=admin).json()["id"]
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


def test_reach_preview_and_maps(client):
    op, analyst = login(client, "op.palu"), login(client, "analis")
    client.post("/api/v1/subscribers", json={"phone": "081234560010", "lat": -0.90, "lon": 119.87}, headers=op)
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

"""The operator console: previews from the channel renderers, areas to click, place search, area uploads,
and the console pages; bad input gets a 4xx and stores nothing."""

import io
import json
import re
import zipfile

import pytest
import shapefile
from fastapi.testclient import TestClient

from broadcast.api.app import create_app
from broadcast.db import session_scope
from broadcast.settings import Settings
from tests.factories import PASSWORD, alert_payload, login_form, make_subscribers, make_team
from tests.integration.test_api import assert_problem, counts, login

pytestmark = pytest.mark.integration

GROBOGAN_SQUARE = {"type": "Polygon", "coordinates": [[[110.90, -7.10], [110.95, -7.10], [110.95, -7.05],
                                                       [110.90, -7.05], [110.90, -7.10]]]}


@pytest.fixture
def settings(db_url, redis_url):
    return Settings(environment="test", database_url=db_url, broker_url=redis_url,
                    secret_key="test-secret-key-123", max_body_bytes=200_000)


@pytest.fixture
def client(settings, engine):
    with session_scope(engine) as s:
        make_team(s)
        make_subscribers(s)
    with TestClient(create_app(settings)) as c:
        yield c


def grobogan_payload(status="Exercise", codes=("33.15.01",)):
    payload = alert_payload(status, codes=list(codes))
    payload["areas"][0]["area_desc"] = "Kecamatan Kedungjati"
    return payload


def sign_in(client, username):
    r = client.post("/masuk", data=login_form(client, username, PASSWORD), follow_redirects=False)
    assert r.status_code == 303
    return {"X-CSRF-Token": client.cookies.get("broadcast_csrf")}


def test_draft_preview_uses_the_channel_renderers_and_stores_nothing(client, engine):
    op = login(client, "op.grobogan")
    before = counts(engine)
    r = client.post("/api/v1/alerts/preview", json=grobogan_payload(), headers=op)
    assert r.status_code == 200, r.text
    body = r.json()
    assert counts(engine) == before
    sms = {p["language"]: p for p in body["channels"]["sms"]}
    assert set(sms) == {"id-ID", "en-US"}
    assert "LATIHAN" in sms["id-ID"]["text"] and "EXERCISE" in sms["en-US"]["text"]
    # The very renderer the SMS channel uses gives the same segment count for the same text.
    from channels.sms.segments import sms_segments

    assert sms["id-ID"]["segments"] == sms_segments(sms["id-ID"]["text"]).segments >= 1
    assert sms["id-ID"]["encoding"] == str(sms_segments(sms["id-ID"]["text"]).encoding) == "GSM-7"
    # The verification code every sent SMS carries is in the preview too (same length), so segments match.
    assert re.search(r"Kode: [0-9A-Z]{6} ", sms["id-ID"]["text"])
    posts = body["channels"]["social"]
    assert posts and all(p["weighted_length"] <= p["max_weighted_length"] for p in posts)
    assert body["cap_xml"].startswith("<?xml") and "<status>Exercise</status>" in body["cap_xml"]
    assert "/peringatan/" in body["public_url"] and "LATIHAN" in body["public_html"]
    assert body["recipients"] == body["reach"]["subscribers"]["any"] == 1  # one subscriber in 33.15.01
    assert body["confirm"]["id"] == "Kirim LATIHAN ke 1 penerima?"


def test_stored_preview_and_confirm_sentence_for_actual(client):
    op = login(client, "op.palu")
    alert_id = client.post("/api/v1/alerts", json=alert_payload("Actual"), headers=op).json()["id"]
    body = client.get(f"/api/v1/alerts/{alert_id}/previews", headers=op).json()
    assert body["confirm"]["id"] == f"Kirim PERINGATAN NYATA ke {body['recipients']} penerima?"
    assert body["recipients"] == 4
    assert "LATIHAN" not in body["channels"]["sms"][0]["text"]
    code = client.get(f"/api/v1/alerts/{alert_id}", headers=op).json()["verify_code"]
    assert code and f"Kode: {code} " in body["channels"]["sms"][0]["text"]


def test_confirm_sentence_uses_indonesian_thousands():
    from broadcast.alerts.composer import confirm_text

    assert confirm_text("Actual", "Alert", 41230)["id"] == "Kirim PERINGATAN NYATA ke 41.230 penerima?"
    assert confirm_text("Exercise", "Alert", 41230)["en"] == "Send an EXERCISE to 41,230 recipients?"


def test_draft_preview_bad_input(client, engine):
    op = login(client, "op.grobogan")
    before = counts(engine)
    assert_problem(client.post("/api/v1/alerts/preview", json=grobogan_payload(codes=["99.99"]), headers=op), 422)
    body = assert_problem(client.post("/api/v1/alerts/preview", json=alert_payload("Exercise"), headers=op), 403)
    assert "yurisdiksi" in body["detail"]  # Palu is outside Grobogan
    assert_problem(client.post("/api/v1/alerts/preview", json={"status": "Exercise"}, headers=op), 422)
    assert_problem(client.post("/api/v1/alerts/preview", json=grobogan_payload()), 401)
    assert counts(engine) == before


def test_child_areas_drill_down(client):
    op = login(client, "op.grobogan")
    top = client.get("/api/v1/areas/children", headers=op).json()
    assert top["level"] == "provinsi" and len(top["features"]) == 38
    kec = client.get("/api/v1/areas/children?code=33.15", headers=op).json()
    assert kec["level"] == "kecamatan" and len(kec["features"]) >= 19
    props = kec["features"][0]["properties"]
    assert props["kode"].startswith("33.15.") and props["has_children"] and len(props["label"]) == 2
    assert [t["kode"] for t in kec["trail"]] == ["33", "33.15"]
    desa = client.get(f"/api/v1/areas/children?code={props['kode']}", headers=op).json()
    assert desa["level"] == "desa" and desa["features"]


def test_child_areas_bad_codes(client):
    op = login(client, "op.grobogan")
    assert_problem(client.get("/api/v1/areas/children?code=33.99", headers=op), 404)
    assert_problem(client.get("/api/v1/areas/children?code=abc", headers=op), 422)
    assert_problem(client.get("/api/v1/areas/children?code=33.15.01.2001", headers=op), 422)
    assert_problem(client.get("/api/v1/areas/children"), 401)


def test_place_search_prefers_the_jurisdiction(client):
    op = login(client, "op.grobogan")
    found = client.get("/api/v1/areas/search?q=Godong", headers=op).json()
    assert found and found[0]["kode"].startswith("33.15") and found[0]["inside_jurisdiction"]
    assert client.get("/api/v1/areas/search?q=33.15.01", headers=op).json()[0]["kode"] == "33.15.01"
    assert_problem(client.get("/api/v1/areas/search?q=", headers=op), 422)


def _upload(client, headers, name, data, ctype="application/octet-stream"):
    return client.post("/api/v1/areas/upload", files={"file": (name, data, ctype)}, headers=headers)


def test_upload_geojson_kml_and_shapefile(client):
    op = login(client, "op.grobogan")
    gj = json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {},
                                                               "geometry": GROBOGAN_SQUARE}]}).encode()
    r = _upload(client, op, "area.geojson", gj)
    assert r.status_code == 200, r.text
    assert r.json()["format"] == "geojson" and r.json()["geometry"]["type"] == "Polygon"
    ring = " ".join(f"{x},{y},0" for x, y in GROBOGAN_SQUARE["coordinates"][0])
    kml = (f'<?xml version="1.0"?><kml xmlns="http://www.opengis.net/kml/2.2"><Placemark><Polygon><outerBoundaryIs>'
           f"<LinearRing><coordinates>{ring}</coordinates></LinearRing></outerBoundaryIs></Polygon></Placemark></kml>")
    r = _upload(client, op, "area.kml", kml.encode())
    assert r.status_code == 200, r.text
    assert r.json()["format"] == "kml"
    shp, shx, dbf = io.BytesIO(), io.BytesIO(), io.BytesIO()
    with shapefile.Writer(shp=shp, shx=shx, dbf=dbf, shapeType=shapefile.POLYGON) as w:
        w.field("name", "C")
        w.poly([list(reversed(GROBOGAN_SQUARE["coordinates"][0]))])
        w.record("kotak")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for ext, b in (("shp", shp), ("shx", shx), ("dbf", dbf)):
            z.writestr(f"area.{ext}", b.getvalue())
    r = _upload(client, op, "area.zip", buf.getvalue(), "application/zip")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["format"] == "shapefile" and body["shapes"] == 1
    # What was uploaded resolves like anything drawn, reach included.
    r = client.post("/api/v1/areas/resolve", json={"geometry": body["geometry"]}, headers=op)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("a.geojson", b"{not json"),
        ("a.geojson", b'{"type": "Point", "coordinates": [110.9, -7.1]}'),
        ("a.geojson", b'{"type": "Polygon", "coordinates": "x"}'),
        ("a.geojson", b'{"type": "Polygon", "coordinates": [[[1000, 1000], [1001, 1000], [1001, 1001], [1000, 1000]]]}'),
        ("a.kml", b"<kml xmlns='http://www.opengis.net/kml/2.2'><Polygon></Polygon></kml>"),
        ("a.kml", b"<kml><unclosed"),
        ("a.kml", b'<?xml version="1.0"?><!DOCTYPE k [<!ENTITY e "x">]><kml>&e;</kml>'),
        ("a.zip", b"PK\x03\x04 broken"),
        ("a.zip", b""),
        ("a.txt", b"hello"),
    ],
)
def test_bad_uploads_are_4xx(client, name, data):
    op = login(client, "op.grobogan")
    r = _upload(client, op, name, data)
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["detail"]


def test_zip_without_shapefile_is_4xx(client):
    op = login(client, "op.grobogan")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("readme.txt", "no shapes")
    assert_problem(_upload(client, op, "a.zip", buf.getvalue()), 422)


def test_console_pages_render_for_each_step(client):
    headers = sign_in(client, "op.grobogan")
    assert "composer" in client.get("/konsol/baru").text
    r = client.post("/api/v1/alerts", json=grobogan_payload(), headers=headers)
    assert r.status_code == 201, r.text
    alert_id = r.json()["id"]
    page = client.get(f"/konsol/peringatan/{alert_id}/ubah").text
    assert 'id="composer"' in page and "status-Exercise" in page
    assert client.post(f"/api/v1/alerts/{alert_id}/submit", headers=headers).status_code == 200
    client.post("/keluar", data={"csrf": headers["X-CSRF-Token"]})
    sign_in(client, "apv.grobogan")
    queue = client.get("/konsol/persetujuan").text
    assert f"/konsol/peringatan/{alert_id}" in queue
    review = client.get(f"/konsol/peringatan/{alert_id}").text
    assert "Kirim LATIHAN ke 1 penerima?" in review and 'class="segments"' in review
    assert "review status-Exercise" in review and "alert.submit" in review
    assert client.get(f"/konsol/peringatan/{alert_id}/halaman").status_code == 200
    assert client.get(f"/konsol/peringatan/{alert_id}/progres").status_code == 200
    listing = client.get("/konsol?q=Kedungjati&status=Exercise").text
    assert f"/konsol/peringatan/{alert_id}" in listing
    assert f"/konsol/peringatan/{alert_id}\"" not in client.get("/konsol?status=Actual").text


def test_reject_with_reason_goes_back_to_the_author_and_is_audited(client):
    op, apv = login(client, "op.grobogan"), login(client, "apv.grobogan")
    alert_id = client.post("/api/v1/alerts", json=grobogan_payload(), headers=op).json()["id"]
    client.post(f"/api/v1/alerts/{alert_id}/submit", headers=op)
    assert_problem(client.post(f"/api/v1/alerts/{alert_id}/reject", json={"reason": ""}, headers=apv), 422)
    r = client.post(f"/api/v1/alerts/{alert_id}/reject", json={"reason": "Wilayah kurang luas"}, headers=apv)
    assert r.json()["state"] == "draft" and r.json()["rejection_reason"] == "Wilayah kurang luas"
    trail = client.get(f"/api/v1/alerts/{alert_id}/audit", headers=op).json()
    assert trail[-1]["action"] == "alert.reject" and trail[-1]["after"]["reason"] == "Wilayah kurang luas"


def test_console_pages_need_sign_in(client):
    for url in ("/konsol/baru", "/konsol/persetujuan", "/konsol/peringatan/1", "/konsol/peringatan/1/progres"):
        r = client.get(url, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/masuk"


def test_review_of_unknown_alert_is_404(client):
    sign_in(client, "op.grobogan")
    assert client.get("/konsol/peringatan/99999").status_code == 404


def test_review_of_an_update_shows_the_diff_against_the_original(client, engine):
    from broadcast.alerts import service

    op, apv = login(client, "op.grobogan"), login(client, "apv.grobogan")
    original = client.post("/api/v1/alerts", json=grobogan_payload(), headers=op).json()["id"]
    client.post(f"/api/v1/alerts/{original}/submit", headers=op)
    assert client.post(f"/api/v1/alerts/{original}/approve", headers=apv).status_code == 202
    with session_scope(engine) as s:  # what the fan-out task does once delivery is planned
        service.mark_published(s, alert=service.get_alert(s, alert_id=original))
    update = client.post(f"/api/v1/alerts/{original}/update", json={}, headers=op).json()
    payload = grobogan_payload()
    payload["infos"][0]["headline"] = "Banjir meluas di Kedungjati"
    r = client.put(f"/api/v1/alerts/{update['id']}", json=payload, headers=op)
    assert r.status_code == 200, r.text
    assert client.post(f"/api/v1/alerts/{update['id']}/submit", headers=op).status_code == 200
    sign_in(client, "apv.grobogan")
    page = client.get(f"/konsol/peringatan/{update['id']}").text
    assert "Perubahan dari versi sebelumnya" in page
    assert '<span class="d-del">-[id-ID] headline: Banjir di Kota Palu</span>' in page
    assert '<span class="d-add">+[id-ID] headline: Banjir meluas di Kedungjati</span>' in page
    assert "msgType: Update" in page and "Kirim PEMBARUAN LATIHAN ke 1 penerima?" in page


def test_progress_page_lists_failures_with_their_reasons(client, engine):
    from broadcast.dispatch.models import Delivery

    op, apv = login(client, "op.grobogan"), login(client, "apv.grobogan")
    alert_id = client.post("/api/v1/alerts", json=grobogan_payload(), headers=op).json()["id"]
    client.post(f"/api/v1/alerts/{alert_id}/submit", headers=op)
    assert client.post(f"/api/v1/alerts/{alert_id}/approve", headers=apv).status_code == 202
    with session_scope(engine) as s:
        s.add(Delivery(alert_id=alert_id, channel="sms", recipient_key="sub:1", state="failed",
                       error="twilio code 21211: invalid 'To' number"))
        s.add(Delivery(alert_id=alert_id, channel="sms", recipient_key="sub:2", state="sent"))
    sign_in(client, "apv.grobogan")
    page = client.get(f"/konsol/peringatan/{alert_id}/progres").text
    assert "twilio code 21211: invalid &#39;To&#39; number" in page and "sub:1" in page
    assert "sub:2" not in page
    assert "twilio code 21211" in client.get(f"/konsol/peringatan/{alert_id}").text

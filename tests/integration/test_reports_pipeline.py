"""The report pipeline on SQLite and PostgreSQL: every source stores a report, enrichment (real worker) geocodes,
classifies, dedupes and clusters; a failure keeps the raw report and is retried; triage is audited; an incident
becomes a draft alert in one step; the public form guards against bots and floods."""

import html
import json
import re
import time
from datetime import timedelta
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from twilio.request_validator import RequestValidator

from broadcast.alerts.models import Alert
from broadcast.api.app import create_app
from broadcast.audit import service as audit
from broadcast.db import session_scope, utcnow
from broadcast.reports import enrichment, exports, intake, petabencana, rules
from broadcast.reports.models import Incident, Report
from broadcast.settings import Settings
from channels.base import InboundEvent
from tests.factories import PASSWORD, alert_payload, make_team

pytestmark = pytest.mark.integration
PUBLIC = "https://bpbd-dki.example.id"
TOKEN = "local-test-token"
KEY = b"k" * 32


@pytest.fixture
def settings(db_url, redis_url, tmp_path):
    return Settings(
        environment="test",
        database_url=db_url,
        broker_url=redis_url,
        secret_key="test-secret-key-123",
        public_base_url=PUBLIC,
        data_dir=tmp_path,
        twilio={"webhook_test_token": TOKEN},
        report_api_keys={"petabencana": "partner-key-123"},
        report_form_min_seconds=0,
        report_limit_per_ip=3,
        report_limit_window_s=60,
        report_photo_max_bytes=20_000,
    )


@pytest.fixture
def team(engine):
    with session_scope(engine) as s:
        return make_team(s)


@pytest.fixture
def client(settings, team):
    with TestClient(create_app(settings)) as c:
        yield c


def login(client, username):
    r = client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def enrich_all(engine, within=None):
    with session_scope(engine) as s:
        ids = enrichment.claim_pending(s, limit=1000)
    for report_id in ids:
        with session_scope(engine) as s:
            enrichment.enrich(s, report_id=report_id, within=within)
    return ids


def form_token(client):
    page = client.get("/lapor")
    assert page.status_code == 200
    return page.text.split('name="token" value="')[1].split('"')[0]


def test_every_source_produces_a_report(client, engine, settings):
    # SMS: LAPOR through the signed Twilio webhook
    form = {"MessageSid": "SM" + "1" * 32, "From": "+6281377712345", "To": "+6281299000001",
            "Body": "LAPOR banjir sepinggang di Kampung Melayu Kec. Jatinegara", "NumMedia": "0"}
    path = "/webhooks/twilio/inbound"
    sig = RequestValidator(TOKEN).compute_signature(PUBLIC + path, form)
    r = client.post(path, content=urlencode(form),
                    headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": sig})
    assert r.status_code == 200, r.text
    # X: a mention stored by the poller's service function
    with session_scope(engine) as s:
        event = InboundEvent(source="x", external_id="1890", sender="42",
                             text="@BPBDJakarta genangan selutut di Jl. Dermaga Klender",
                             raw={"tweet": {"id": "1890", "author_id": "42"}})
        intake.store_x_post(s, event=event, account="BPBDJakarta", author_key=KEY)
    # Web form, with a photo
    png = _tiny_png()
    r = client.post("/lapor", data={"text": "Kebakaran rumah warga di Kel. Klender", "token": form_token(client),
                                    "lat": "-6.2175", "lon": "106.9035"},
                    files={"photo": ("a.png", png, "image/png")})
    assert r.status_code == 200 and 'id="lapor-done"' in r.text, r.text
    # Partner API with a key
    r = client.post("/api/v1/reports", headers={"X-API-Key": "partner-key-123"},
                    json={"text": "Banjir 70 cm di Cawang", "external_id": "pb-1", "lat": -6.2437, "lon": 106.8697})
    assert r.status_code == 202 and r.json()["created"], r.text
    again = client.post("/api/v1/reports", headers={"X-API-Key": "partner-key-123"},
                        json={"text": "Banjir 70 cm di Cawang", "external_id": "pb-1"})
    assert again.json() == {"id": r.json()["id"], "created": False}
    # Staff token
    r = client.post("/api/v1/reports", headers=login(client, "analis"), json={"text": "Longsor di Kec. Jagakarsa"})
    assert r.status_code == 202

    with session_scope(engine) as s:
        rows = s.scalars(sa.select(Report).order_by(Report.id)).all()
        assert [r.source for r in rows] == ["sms", "x", "web", "api", "api"]
        assert all(r.raw and r.processing == "pending" for r in rows)
        assert rows[2].media and rows[2].media[0].startswith("/pusdalops/foto/")
    enrich_all(engine)
    with session_scope(engine) as s:
        rows = {r.source + str(i): r for i, r in enumerate(s.scalars(sa.select(Report).order_by(Report.id)))}
        sms, x, web, api, staff = rows.values()
        assert (sms.hazard, sms.depth_cm, sms.admin_code, sms.geocode_method) == (
            "banjir", 100, "31.75.03.1001", "text")
        assert sms.lat is not None  # placed at the kelurahan
        assert (x.hazard, x.depth_cm, x.street) == ("genangan", 50, "dermaga")
        assert (web.hazard, web.geocode_method) == ("kebakaran", "coordinates")
        assert web.kecamatan_code == "31.75.07"
        assert (api.hazard, api.depth_cm, api.geocode_method) == ("banjir", 70, "coordinates")
        assert staff.hazard == "longsor" and staff.kecamatan_code == "31.74.09"
        assert all(r.processing == "done" for r in rows.values())
    # the photo is for staff only
    photo = rows["web2"].media[0]
    assert client.get(photo).status_code == 401
    served = client.get(photo, headers=login(client, "analis"))
    # Re-encoded on upload (issue 24: no metadata survives), the same picture.
    assert served.headers["cache-control"] == "no-store" and _pixels(served.content) == _pixels(png)


def test_bad_input_is_refused_and_stores_nothing(client, engine):
    assert client.post("/api/v1/reports", json={"text": "banjir"}).status_code == 401
    assert client.post("/api/v1/reports", headers={"X-API-Key": "wrong"}, json={"text": "x"}).status_code == 401
    key = {"X-API-Key": "partner-key-123"}
    assert client.post("/api/v1/reports", headers=key, json={"text": "banjir", "lat": -6.2}).status_code == 422
    assert client.post("/api/v1/reports", headers=key, json={"text": "banjir", "lat": 95, "lon": 0}).status_code == 422
    assert client.post("/api/v1/reports", headers=key, json={"text": ""}).status_code == 422
    # web form: honeypot, forged token, wrong photo type, too large photo
    token = form_token(client)
    # The honeypot is answered like a success (issue 22: a bot learns nothing), and nothing is kept (count below).
    trap = client.post("/lapor", data={"text": "banjir besar", "token": token, "website": "http://spam"})
    assert trap.status_code == 200 and 'id="lapor-done"' in trap.text
    assert client.post("/lapor", data={"text": "banjir besar", "token": "123.abc"}).status_code == 422
    r = client.post("/lapor", data={"text": "banjir besar", "token": token},
                    files={"photo": ("x.gif", b"GIF89a" + b"\0" * 10, "image/gif")})
    assert r.status_code == 422 and "JPEG" in r.text
    with session_scope(engine) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Report)) == 0


def test_form_too_fast_and_rate_limited(client, engine, settings):
    fast = Settings(**{**settings.model_dump(), "report_form_min_seconds": 30})
    with TestClient(create_app(fast)) as c:
        r = c.post("/lapor", data={"text": "banjir besar", "token": form_token(c)})
        assert r.status_code == 422 and "cepat" in r.text
    codes = [client.post("/lapor", data={"text": f"banjir besar {i}", "token": form_token(client)}).status_code
             for i in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    with session_scope(engine) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Report)) == 3


def _intake(s, text, *, author="a1", lat=None, lon=None, at=None, ext=None):
    return intake.intake(s, source="api", external_id=ext or f"t-{time.monotonic_ns()}", raw={"text": text},
                         text=text, author=author, lat=lat, lon=lon, received_at=at)[0]


def test_duplicates_from_the_same_author_collapse(engine):
    with session_scope(engine) as s:
        first = _intake(s, "Banjir di Jl. Dermaga RT 14 RW 11 Klender, sepinggang!", author="same")
        dup = _intake(s, "banjir di jl dermaga rt 14 rw 11 klender sepinggang", author="same")
        other_author = _intake(s, "Banjir di Jl. Dermaga RT 14 RW 11 Klender, sepinggang!", author="other")
    enrich_all(engine, within="31")
    with session_scope(engine) as s:
        a, b, c = (s.get(Report, i) for i in (first, dup, other_author))
        assert b.duplicate_of_id == a.id and b.incident_id == a.incident_id
        assert c.duplicate_of_id is None and c.incident_id == a.incident_id
        incident = s.get(Incident, a.incident_id)
        assert incident.report_count == 2  # the duplicate is not counted twice


def test_clustering_groups_same_street_reports_and_separates_others(engine):
    with session_scope(engine) as s:
        street = [
            _intake(s, "Banjir selutut di Jl. Dermaga, Kel. Klender", author="p1"),
            _intake(s, "jalan dermaga klender banjir sudah masuk rumah", author="p2"),
            _intake(s, "Banjir Jl Dermaga kelurahan klender 60 cm", author="p3", lat=-6.2160, lon=106.9010),
        ]
        far = _intake(s, "Banjir di Kapuk Cengkareng", author="p4")
        landslide = _intake(s, "Longsor di Jl. Dermaga Klender", author="p5")
        old = _intake(s, "Banjir di Jl. Dermaga Klender", author="p6", at=utcnow() - timedelta(days=2))
    enrich_all(engine, within="31")
    with session_scope(engine) as s:
        incidents = {i: s.get(Report, i).incident_id for i in [*street, far, landslide, old]}
        assert len({incidents[i] for i in street}) == 1
        group = s.get(Incident, incidents[street[0]])
        assert group.report_count == 3 and group.hazard == "banjir" and group.max_depth_cm == 60
        assert "dermaga" in group.representative_text.lower()
        assert len({incidents[far], incidents[landslide], incidents[old], group.id}) == 4


def test_processing_failure_keeps_the_raw_report_and_a_real_worker_retries_it(engine, db_url, monkeypatch):
    from celery.contrib.testing.worker import start_worker

    from broadcast.reports import tasks
    from broadcast.settings import get_settings
    from broadcast.worker import celery

    monkeypatch.setenv("BROADCAST_DATABASE_URL", db_url)
    get_settings.cache_clear()
    real = rules.guess_hazard  # the per-report step of classification, batched or not
    calls = {"n": 0}

    def flaky(scores):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("classifier crashed")
        return real(scores)

    monkeypatch.setattr(rules, "guess_hazard", flaky)
    with session_scope(engine) as s:
        report_id = _intake(s, "Banjir sepinggang di Kampung Melayu", author="z")
    seen = []
    try:
        with start_worker(celery, pool="solo", perform_ping_check=False, shutdown_timeout=30, queues=["intake"]):
            tasks.kick_enrichment()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with session_scope(engine) as s:
                    row = s.get(Report, report_id)
                    seen.append((row.processing, row.last_error))
                    if row.processing == "done":
                        break
                time.sleep(0.1)
    finally:
        get_settings.cache_clear()
    with session_scope(engine) as s:
        row = s.get(Report, report_id)
        assert row.processing == "done" and row.attempts == 1 and row.hazard == "banjir"
        assert row.raw == {"text": "Banjir sepinggang di Kampung Melayu"}
    assert ("failed", "RuntimeError: classifier crashed") in seen


def test_failed_report_stays_stored_and_is_due_again(engine):
    with session_scope(engine) as s:
        report_id = _intake(s, "banjir", author="y")
    with session_scope(engine) as s:
        assert enrichment.claim_pending(s) == [report_id]
        assert enrichment.claim_pending(s) == []  # leased
    with session_scope(engine) as s:
        enrichment.mark_failed(s, report_id=report_id, error="boom")
    with session_scope(engine) as s:
        row = s.get(Report, report_id)
        assert (row.processing, row.last_error, row.raw) == ("failed", "boom", {"text": "banjir"})
        assert enrichment.count_pending(s) == 1
        assert enrichment.claim_pending(s, now=utcnow() + timedelta(minutes=10)) == [report_id]


def test_triage_is_audited_and_an_incident_becomes_a_draft_alert(client, engine, team):
    with session_scope(engine) as s:
        ids = [_intake(s, "Banjir sepinggang di Kampung Melayu Kec. Jatinegara", author=f"c{i}") for i in range(3)]
    enrich_all(engine)
    analyst = login(client, "analis")
    with session_scope(engine) as s:
        incident_id = s.get(Report, ids[0]).incident_id
    r = client.post(f"/api/v1/reports/{ids[0]}/state", json={"state": "dismissed", "note": "sama"}, headers=analyst)
    assert r.status_code == 200 and r.json()["state"] == "dismissed"
    r = client.post(f"/api/v1/reports/{ids[0]}/state", json={"state": "actioned"}, headers=analyst)
    assert r.status_code == 409
    r = client.post(f"/api/v1/reports/{ids[1]}/triage", json={"assignee_id": team["analyst"].id, "note": "cek"},
                    headers=analyst)
    assert r.json()["assignee_id"] == team["analyst"].id
    r = client.post(f"/api/v1/incidents/{incident_id}/state", json={"state": "verified"}, headers=analyst)
    assert r.status_code == 200
    r = client.post(f"/api/v1/incidents/{incident_id}/draft-alert", headers=analyst)
    assert r.status_code == 201, r.text
    alert_id = r.json()["alert_id"]
    with session_scope(engine) as s:
        states = [s.get(Report, i).state for i in ids]
        assert states == ["verified", "verified", "verified"]  # dismissed may be re-verified with its incident
        alert = s.get(Alert, alert_id)
        assert alert.state == "draft" and alert.areas[0].geocodes == ["31.75.03"]
        assert "Jatinegara" in alert.infos[0].description or "Jatinegara" in alert.infos[0].headline
        actions = [e.action for e in audit.entries_for(s, subject_type="report", subject_id=ids[0])]
        assert actions == ["report.state", "report.state"]
        trail = [e.action for e in audit.entries_for(s, subject_type="incident", subject_id=incident_id)]
        assert trail == ["incident.state", "incident.draft_alert"]
        assert s.get(Incident, incident_id).alert_id == alert_id
    listed = client.get("/api/v1/reports?hazard=banjir", headers=analyst).json()
    assert len(listed) == 3
    geo = client.get("/api/v1/reports/export.geojson", headers=analyst).json()
    assert {f["properties"]["kind"] for f in geo["features"]} == {"report", "incident"}
    csv_text = client.get("/api/v1/reports/export.csv?state=verified", headers=analyst).text
    assert csv_text.splitlines()[0].startswith("id,source,received_at") and len(csv_text.splitlines()) == 4


def test_dashboard_needs_a_sign_in_and_credits_petabencana_only_for_its_data(client, engine):
    assert client.get("/pusdalops", follow_redirects=False).status_code == 303
    with session_scope(engine) as s:
        _intake(s, "Banjir di Kampung Melayu", author="d")
    enrich_all(engine)
    analyst = login(client, "analis")
    page = client.get("/pusdalops", headers=analyst)
    assert page.status_code == 200
    assert "<svg" in page.text and "Kampung Melayu" in page.text
    assert "PetaBencana" not in page.text  # live reports only: no demo credit
    with session_scope(engine) as s:  # as `broadcast demo replay-petabencana` stores them
        _intake(s, "Banjir di Kelapa Gading", author="e", ext=f"{petabencana.EXTERNAL_PREFIX}123")
    page = client.get("/pusdalops", headers=analyst)
    assert "Data demo: PetaBencana" in page.text and 'href="https://petabencana.id"' in page.text


def test_dashboard_is_an_operations_screen_in_indonesian_or_english(client, engine):
    with session_scope(engine) as s:
        report_id = _intake(s, "Banjir di Kampung Melayu", author="d", lat=-6.2237, lon=106.8661)
    analyst = login(client, "analis")
    op = login(client, "op.palu")
    alert = client.post("/api/v1/alerts", json=alert_payload("Exercise"), headers=op).json()
    client.post(f"/api/v1/alerts/{alert['id']}/submit", headers=op)
    assert client.post(f"/api/v1/alerts/{alert['id']}/approve", headers=login(client, "apv.sulteng")).status_code == 202
    with session_scope(engine) as s:  # no worker runs here: publish as the web channel does
        from broadcast.alerts import service as alerts

        alerts.mark_published(s, alert=alerts.get_alert(s, alert_id=alert["id"]))
    page = client.get("/pusdalops", headers=analyst).text
    assert 'class="map ops-map"' in page and '<main class="ops">' in page  # full width, map first
    assert page.index('id="ops-map"') < page.index('id="filters"') < page.index('id="incidents"')
    areas = json.loads(html.unescape(re.search(r"data-alerts='([^']*)'", page).group(1)))
    assert [f["properties"]["status"] for f in areas["features"]] == ["Exercise"]  # active alert areas
    # Indonesian labels for states, sources and hazards; English with ?lang=en.
    row = re.search(rf'<tr data-report="{report_id}">.*?</tr>', page, re.S).group(0)
    assert ">Baru<" in row and "Mitra (API)" in row
    assert '<option value="verified" >Terverifikasi</option>' in page and ">Banjir<" in page
    english = client.get("/pusdalops?lang=en", headers=analyst).text
    row = re.search(rf'<tr data-report="{report_id}">.*?</tr>', english, re.S).group(0)
    assert ">New<" in row and "Partner (API)" in row and ">Flood<" in english
    # The chart has both axes with tick labels and titles, and a bar per hour.
    chart = re.search(r'<svg class="chart".*?</svg>', page, re.S).group(0)
    assert chart.count('class="axis"') == 2 and chart.count('class="bar"') == 24
    assert ">Laporan<" in chart and ">Jam (WIB)<" in chart and re.search(r'class="tick"[^>]*>\d\d\.00<', chart)
    assert "1 laporan</title>" in chart
    assert ">Reports<" in re.search(r'<svg class="chart".*?</svg>', english, re.S).group(0)
    for bad in ("abc", "inf", "nan", "-5", "99999"):
        assert client.get(f"/pusdalops?hours={bad}", headers=analyst).status_code == 422, bad


def test_live_rows_show_the_local_time_and_zone_the_page_rows_show(client, engine):
    from broadcast.reports.routes import _read_live_reports

    at = utcnow() - timedelta(hours=1)
    with session_scope(engine) as s:
        jakarta = _intake(s, "Banjir di Kampung Melayu", author="d", at=at)
        palu = _intake(s, "Banjir di Talise", author="e", at=at)
        s.get(Report, palu).admin_code = "72.71.02.1001"  # as enrichment places it
    analyst = login(client, "analis")
    _, frames, _ = _read_live_reports(engine, exports.ReportFilter())((jakarta - 1, utcnow()))
    live = {d["id"]: d["received_local"] for d in (json.loads(f.split("data: ", 1)[1]) for f in frames
                                                   if f.startswith("event: report"))}
    for lang, zone_clock in (("id", r"\d{2}\.\d{2}"), ("en", r"\d{2}:\d{2}")):
        page = client.get(f"/pusdalops?lang={lang}", headers=analyst).text
        for report_id, zone in ((jakarta, "WIB"), (palu, "WITA")):
            row = re.search(rf'<tr data-report="{report_id}">.*?</tr>', page, re.S).group(0)
            shown = html.unescape(re.search(r'<td class="when">(.*?)</td>', row).group(1))
            assert re.fullmatch(rf"\d{{1,2}} \w{{3}} {zone_clock} {zone}", shown), shown
            assert live[report_id][lang] == shown  # ops.js shows this string as it came


def test_offline_base_map_cells_from_the_packaged_boundaries(client):
    provinces = client.get("/peta/dasar/provinsi/0/0.geojson")
    assert provinces.status_code == 200 and provinces.headers["content-type"] == "application/geo+json"
    names = {f["properties"]["nama"] for f in provinces.json()["features"]}
    assert len(names) == 38 and "SULAWESI TENGAH" in {n.upper() for n in names}
    # Kota Palu lies in the kecamatan cell (25, 11): 119-120 E, 1-0 S; every feature has a label point inside.
    cell = client.get("/peta/dasar/kecamatan/25/11.geojson").json()["features"]
    palu = {f["properties"]["kode"]: f for f in cell if f["properties"]["kode"].startswith("72.71.")}
    assert len(palu) >= 8
    from shapely.geometry import Point, shape

    for f in palu.values():
        assert shape(f["geometry"]).buffer(0.001).contains(Point(f["properties"]["label"]))
    assert client.get("/peta/dasar/kecamatan/99/11.geojson").status_code == 404
    assert client.get("/peta/dasar/desa/1/1.geojson").status_code == 422
    assert client.get("/peta/dasar/kecamatan/-1/1.geojson").status_code == 422


def test_tile_url_setting_is_checked_and_allowed_by_the_csp(settings, team):
    with pytest.raises(ValueError, match="MAP_TILE_URL"):
        Settings(**{**settings.model_dump(), "map_tile_url": "javascript:alert(1)"})
    with pytest.raises(ValueError, match="MAP_TILE_URL"):
        Settings(**{**settings.model_dump(), "map_tile_url": "https://tiles.example.id/x.png"})
    tiled = settings.model_copy(
        update={"map_tile_url": "https://tiles.example.id/{z}/{x}/{y}.png", "map_tile_attribution": "© OSM"}
    )
    with TestClient(create_app(tiled)) as c:
        csp = c.get("/").headers["content-security-policy"]
        assert "img-src 'self' data: blob: https://tiles.example.id;" in csp
        page = c.get("/pusdalops", headers=login(c, "analis")).text
        assert 'data-tiles="https://tiles.example.id/{z}/{x}/{y}.png"' in page
    with TestClient(create_app(settings)) as c:
        assert "tiles.example.id" not in c.get("/").headers["content-security-policy"]


def _tiny_png() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (4, 3), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def _pixels(data: bytes) -> list:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return list(img.convert("RGB").getdata())

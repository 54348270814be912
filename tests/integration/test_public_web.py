"""Public pages and feeds: Atom/RSS/JSON with filters, CAP links, conditional GET, area pages, maps."""

from datetime import timedelta
from email.utils import format_datetime, parsedate_to_datetime
from xml.etree import ElementTree as ET

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from broadcast.alerts import service
from broadcast.alerts.schemas import AlertCreate
from broadcast.api.app import create_app
from broadcast.cap import validation
from broadcast.db import session_scope
from broadcast.dispatch.plan import plan_alert
from broadcast.settings import Settings
from broadcast.users.models import User
from tests.factories import alert_payload, make_team

pytestmark = [pytest.mark.integration, pytest.mark.clock]
ATOM = {"a": "http://www.w3.org/2005/Atom"}


def publish(engine, status, codes=("72.71",), headline=None):
    with session_scope(engine) as s:
        team = {u.username: u for u in s.scalars(sa.select(User))}
        payload = alert_payload(status, codes=list(codes))
        if headline:
            payload["infos"][0]["headline"] = headline
        alert = service.create_alert(s, data=AlertCreate(**payload), author=team["op.palu"], sender="bpbd@palu")
        service.submit_alert(s, alert_id=alert.id, actor=team["op.palu"])
        service.approve_alert(s, alert_id=alert.id, approver=team["apv.sulteng"], production=True)
        plan_alert(s, alert_id=alert.id)
        return alert.identifier


@pytest.fixture
def client(db_url, engine):
    with session_scope(engine) as s:
        make_team(s)
    settings = Settings(environment="test", database_url=db_url, secret_key="k" * 20,
                        public_base_url="https://peringatan.example.id")
    with TestClient(create_app(settings)) as c:
        yield c


def test_atom_feed_follows_the_rules_and_links_valid_cap(client, engine):
    real = publish(engine, "Actual")
    drill = publish(engine, "Exercise", headline="Latihan banjir")
    r = client.get("/feed/atom.xml")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/atom+xml")
    feed = ET.fromstring(r.content)
    assert feed.findtext("a:id", namespaces=ATOM) and feed.findtext("a:title", namespaces=ATOM)
    assert feed.findtext("a:updated", namespaces=ATOM)
    assert feed.find("a:link[@rel='self']", ATOM) is not None
    entries = feed.findall("a:entry", ATOM)
    assert len(entries) == 1  # the exercise is not in the real feed
    entry = entries[0]
    for tag in ("id", "title", "updated"):
        assert entry.findtext(f"a:{tag}", namespaces=ATOM)
    cap_link = entry.find("a:link[@type='application/cap+xml']", ATOM).get("href")
    assert cap_link == f"https://peringatan.example.id/cap/{real}.xml"
    doc = client.get(cap_link.replace("https://peringatan.example.id", ""))
    assert validation.parse_cap(doc.content).identifier == real  # schema-valid CAP 1.2
    drills = ET.fromstring(client.get("/feed/latihan.xml").content).findall("a:entry", ATOM)
    assert len(drills) == 1 and drills[0].findtext("a:title", namespaces=ATOM).startswith("[LATIHAN]")
    assert drill in drills[0].findtext("a:id", namespaces=ATOM)


def test_rss_and_json_with_filters(client, engine):
    publish(engine, "Actual", codes=("72.71",), headline="Banjir Palu")
    publish(engine, "Actual", codes=("72.71.01",), headline="Longsor Palu Timur")
    publish(engine, "Exercise", codes=("72.71",), headline="Latihan Palu")
    rss = ET.fromstring(client.get("/feed/rss.xml").content)
    assert {i.findtext("title") for i in rss.iter("item")} == {"Banjir Palu", "Longsor Palu Timur"}
    assert all(i.find("enclosure").get("type") == "application/cap+xml" for i in rss.iter("item"))
    everything = client.get("/api/public/alerts", params={"status": "all"}).json()["alerts"]
    assert sorted(a["is_exercise_or_test"] for a in everything) == [False, False, True]
    palu_timur = client.get("/api/public/alerts", params={"wilayah": "72.71.01"}).json()["alerts"]
    assert {a["infos"][0]["headline"] for a in palu_timur} == {"Banjir Palu", "Longsor Palu Timur"}
    elsewhere = client.get("/api/public/alerts", params={"wilayah": "33.15"}).json()["alerts"]
    assert elsewhere == []
    assert client.get("/api/public/alerts", params={"severity": "Minor"}).json()["alerts"] == []
    assert client.get("/api/public/alerts", params={"wilayah": "99.99"}).status_code == 404
    assert client.get("/api/public/alerts", params={"severity": "Huge"}).status_code == 422
    assert client.get("/feed/atom.xml", params={"wilayah": "72.7'1"}).status_code == 404


@pytest.mark.parametrize("path", ["/feed/atom.xml", "/feed/rss.xml", "/api/public/alerts", "/"])
def test_conditional_get_and_no_stale_copy(client, engine, path):
    publish(engine, "Actual")
    first = client.get(path)
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    # Kept briefly by browsers and proxies to absorb a spike (issue 20); a change is still seen by the next request
    # that reaches the service (below: at once, with a new ETag).
    assert first.headers["cache-control"] == "public, max-age=5, stale-while-revalidate=30"
    assert client.get(path, headers={"If-None-Match": etag}).status_code == 304
    later = format_datetime(parsedate_to_datetime(modified) + timedelta(seconds=1), usegmt=True)
    assert client.get(path, headers={"If-Modified-Since": later}).status_code == 304
    publish(engine, "Actual", headline="Banjir susulan")
    fresh = client.get(path, headers={"If-None-Match": etag})
    assert fresh.status_code == 200 and fresh.headers["etag"] != etag
    assert "Banjir susulan" in fresh.text


def test_alert_page_area_page_and_map_data(client, engine):
    ident = publish(engine, "Exercise", codes=("72.71",))
    page = client.get(f"/peringatan/{ident}")
    assert "BUKAN KEJADIAN NYATA" in page.text and f"/peringatan/{ident}/area.geojson" in page.text
    assert "/static/vendor/leaflet/leaflet.js" in page.text
    english = client.get(f"/peringatan/{ident}", params={"lang": "en"}).text
    assert english.index("Flooding in Palu City") < english.index("Banjir di Kota Palu")
    area = client.get(f"/peringatan/{ident}/area.geojson").json()
    roles = [f["properties"]["role"] for f in area["features"]]
    assert roles[0] == "target" and "outline" in roles
    assert any(f["properties"].get("kode") == "72.71" for f in area["features"])
    assert client.get("/static/vendor/leaflet/leaflet.js").status_code == 200
    wilayah = client.get("/wilayah/72.71")
    assert wilayah.status_code == 200 and "Kota Palu" in wilayah.text and ident in wilayah.text
    assert ident not in client.get("/wilayah/33.15").text
    assert client.get("/wilayah/99.99").status_code == 404


def test_html_escapes_hostile_text(client, engine):
    ident = publish(engine, "Exercise", headline='<script>alert("x")</script> Banjir')
    html = client.get(f"/peringatan/{ident}").text
    assert '<script>alert("x")</script>' not in html and "&lt;script&gt;" in html


@pytest.mark.parametrize(
    ("code", "province", "local"),
    [
        ("72.71", "72", "Senin, 7 Desember 2026 pukul 20.52 WITA"),  # Kota Palu
        ("34.04", "34", "Senin, 7 Desember 2026 pukul 19.52 WIB"),  # Sleman
        ("91.71", "91", "Senin, 7 Desember 2026 pukul 21.52 WIT"),  # Kota Jayapura
    ],
)
def test_pages_show_the_local_time_of_the_alert_area(client, engine, code, province, local):
    import time_machine

    from broadcast.users.models import Role
    from tests.factories import make_user

    with session_scope(engine) as s:
        make_user(s, f"op.{code}", Role.OPERATOR, code)
        make_user(s, f"apv.{province}", Role.APPROVER, province)
    with time_machine.travel("2026-12-07 12:52:00+00:00", tick=False), session_scope(engine) as s:
        users = {u.username: u for u in s.scalars(sa.select(User))}
        alert = service.create_alert(s, data=AlertCreate(**alert_payload("Actual", codes=[code])),
                                     author=users[f"op.{code}"], sender="bpbd@example.id")
        service.submit_alert(s, alert_id=alert.id, actor=users[f"op.{code}"])
        service.approve_alert(s, alert_id=alert.id, approver=users[f"apv.{province}"], production=True)
        plan_alert(s, alert_id=alert.id)
        identifier, verify_code = alert.identifier, alert.verify_code
    english = local.replace("Senin, 7 Desember 2026 pukul ", "Mon 7 Dec 2026, ").replace(".", ":")
    for path in (f"/peringatan/{identifier}", f"/wilayah/{code}", "/", f"/cek?kode={verify_code}"):
        assert local in client.get(path).text, path
        assert english in client.get(path + ("&" if "?" in path else "?") + "lang=en").text, path
    assert "UTC" not in client.get(f"/peringatan/{identifier}").text

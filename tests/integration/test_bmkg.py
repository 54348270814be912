"""BMKG intake: earthquakes, nowcast CAP and RSS become drafts that still need a human approval."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import time_machine

from broadcast.alerts import service
from broadcast.alerts.models import Alert
from broadcast.cap import codec, validation
from broadcast.intake import bmkg
from broadcast.settings import Settings
from broadcast.users.service import system_user
from broadcast.worker import create_celery

pytestmark = [pytest.mark.integration, pytest.mark.clock]
BMKG = Path(__file__).resolve().parents[1] / "fixtures" / "bmkg"


def count(session):
    return session.scalar(sa.select(sa.func.count()).select_from(Alert))


def test_earthquakes_become_drafts_once(session):
    author = system_user(session)
    data = (BMKG / "gempa/gempaterkini_2026-09-24_first2.json").read_bytes()
    first = bmkg.import_quakes(session, data, author=author)
    session.commit()
    assert len(first.created) == 2
    again = bmkg.import_quakes(session, data, author=author)
    assert again.created == [] and len(again.skipped) == 2
    alert = session.get(Alert, first.created[1])  # M5.3, 26 km SW of Pulau Puah, Sulawesi Tengah
    assert alert.state == "draft" and alert.origin == "bmkg" and alert.status == "Actual"
    assert [i.language for i in alert.infos] == ["id-ID", "en-US"]
    assert alert.infos[0].hazard == "gempa_bumi" and alert.infos[0].severity == "Moderate"
    assert "M5.3" in alert.infos[0].headline
    assert "BMKG" in alert.note
    area = alert.areas[0]
    assert area.circles[0]["lat"] == -0.70 and area.circles[0]["radius_km"] >= 25
    assert area.geocodes and all(code.startswith("72.") for code in area.geocodes)  # Sulawesi Tengah
    with time_machine.travel(alert.infos[0].onset + timedelta(hours=1)):
        validation.parse_cap(service.export_cap(alert))  # valid CAP while it is current
    with time_machine.travel(alert.infos[0].onset + timedelta(hours=7)), pytest.raises(codec.CapError, match="expires"):
        service.export_cap(alert)  # six hours later it can no longer be published


def test_tsunami_potential_uses_the_tsunami_template(session):
    doc = {"Infogempa": {"gempa": {
        "DateTime": "2026-11-26T10:02:00+00:00", "Coordinates": "-0.18,119.85", "Magnitude": "7.4",
        "Kedalaman": "10 km", "Wilayah": "26 km utara Donggala", "Potensi": "Berpotensi tsunami"}}}
    result = bmkg.import_quakes(session, json.dumps(doc).encode(), author=system_user(session))
    alert = session.get(Alert, result.created[0])
    assert alert.infos[0].hazard == "tsunami" and alert.infos[0].severity == "Extreme"
    assert "TSUNAMI" in alert.infos[0].headline
    assert "72.71" in alert.areas[0].geocodes  # Palu lies inside the felt radius


def test_bad_json_is_reported_and_stores_nothing(session):
    for bad in (b"{", b'{"Infogempa": {}}', b'{"Infogempa": {"gempa": [{"Magnitude": "5"}]}}'):
        result = bmkg.import_quakes(session, bad, author=system_user(session))
        assert result.created == [] and result.skipped[0][1]
    assert count(session) == 0


def test_nowcast_cap_in_two_languages_is_one_draft_indonesian_first(session):
    author = system_user(session)
    en = bmkg.import_nowcast_cap(session, (BMKG / "cap/CGT20260924002_alert_en.xml").read_bytes(), author=author)
    id_ = bmkg.import_nowcast_cap(session, (BMKG / "cap/CGT20260924002_alert_id.xml").read_bytes(), author=author)
    session.commit()
    assert len(en.created) == 1 and id_.merged == en.created
    alert = session.get(Alert, en.created[0])
    session.refresh(alert)
    assert [i.language for i in alert.infos] == ["id-ID", "en-US"]
    assert alert.areas[0].geocodes and all(c.startswith("75.") for c in alert.areas[0].geocodes)  # Gorontalo
    assert alert.areas[0].polygons  # BMKG's own polygons kept for CAP
    assert count(session) == 1


def test_rss_items_map_place_names_to_kecamatan(session):
    result = bmkg.import_nowcast_rss(session, (BMKG / "rss/bmkg_nowcast_rss_id_2026-02-16.xml").read_bytes(),
                                     author=system_user(session), fetch=None)
    session.commit()
    assert len(result.created) == 3
    by_prefix = {}
    for alert_id in result.created:
        alert = session.get(Alert, alert_id)
        prefixes = {c.split(".")[0] for c in alert.areas[0].geocodes}
        assert len(prefixes) == 1
        by_prefix[prefixes.pop()] = alert
    assert set(by_prefix) == {"36", "33", "12"}  # Banten, Jawa Tengah, Sumatera Utara
    assert by_prefix["33"].infos[0].web.endswith("CJG20260216005_alert.xml")
    assert by_prefix["33"].expires == datetime(2026, 2, 16, 18, 0, tzinfo=UTC)  # 01:00 WIB on the 17th


def test_rss_with_fetch_prefers_the_linked_cap(session):
    cap_doc = (BMKG / "cap/bmkg_nowcast_CJG_jateng_2026-02-16_toy_polygon.xml").read_bytes()
    fetched = []

    def fetch(url):
        fetched.append(url)
        if "CJG20260216005" in url:
            return cap_doc
        raise OSError("unreachable")

    result = bmkg.import_nowcast_rss(session, (BMKG / "rss/bmkg_nowcast_rss_id_2026-02-16.xml").read_bytes(),
                                     author=system_user(session), fetch=fetch)
    assert len(fetched) == 3 and len(result.created) == 3
    refs = set(session.scalars(sa.select(Alert.origin_ref)))
    assert "bmkg-cap:2.49.0.1.360.0.2026.02.16.16.45.005" in refs


def test_poll_job_is_scheduled_only_when_configured_and_adds_nothing_twice(session, db_url, monkeypatch, tmp_path):
    assert "bmkg-poll" not in create_celery(Settings()).conf.beat_schedule
    assert "bmkg-poll" in create_celery(Settings(bmkg_sources=[str(tmp_path)])).conf.beat_schedule
    (tmp_path / "gempa.json").write_bytes((BMKG / "gempa/gempaterkini_2026-09-24_first2.json").read_bytes())
    (tmp_path / "cap.xml").write_bytes((BMKG / "cap/CGT20260924002_alert_id.xml").read_bytes())
    from broadcast.alerts import tasks
    from broadcast.settings import get_settings

    monkeypatch.setenv("BROADCAST_DATABASE_URL", db_url)
    monkeypatch.setenv("BROADCAST_BMKG_SOURCES", json.dumps([str(tmp_path)]))
    get_settings.cache_clear()
    try:
        tasks.poll_bmkg()
        tasks.poll_bmkg()
    finally:
        get_settings.cache_clear()
    session.expire_all()
    assert count(session) == 3

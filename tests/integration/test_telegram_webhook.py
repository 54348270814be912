"""POST /webhooks/telegram: the secret token is checked, updates are stored once, every command answers."""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from broadcast.api.app import create_app
from broadcast.db import session_scope
from broadcast.reports.models import Report
from broadcast.settings import Settings
from broadcast.subscribers.models import Subscriber
from tests.conftest import TEST_REDIS_URL
from tests.factories import make_subscribers, make_team
from tests.fakes.telegram import telegram_update

pytestmark = pytest.mark.integration
SECRET = "telegram-webhook-secret-42"
PATH = "/webhooks/telegram"
CHAT = 777000111


@pytest.fixture
def client(db_url, engine):
    with session_scope(engine) as s:
        make_team(s)
        make_subscribers(s)
    settings = Settings(environment="test", database_url=db_url, broker_url=TEST_REDIS_URL,
                        secret_key="a-test-secret-key-0123456789abcdef", telegram={"webhook_secret": SECRET})
    with TestClient(create_app(settings)) as c:
        yield c


def update(text=None, **kwargs):
    return telegram_update(CHAT, text, **kwargs)


def post(client, body, secret=SECRET):
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
    return client.post(PATH, json=body, headers=headers)


def reports(engine):
    with engine.connect() as c:
        return c.execute(sa.select(Report.external_id, Report.command, Report.state, Report.lon, Report.lat,
                                   Report.source)).all()


def test_a_forged_update_is_refused_and_nothing_is_stored(client, engine):
    for secret in (None, "", "wrong-secret", SECRET + "x", SECRET[:-1]):
        r = post(client, update("/lapor banjir"), secret=secret)
        assert r.status_code == 403 and r.json()["type"] == "/problems/invalid-signature", secret
    assert reports(engine) == []


def test_daftar_registers_the_chat_and_replies_in_indonesian_then_stop_and_start(client, engine):
    r = post(client, update("/daftar Palu Barat"))
    assert r.status_code == 200
    reply = r.json()
    assert reply["method"] == "sendMessage" and reply["chat_id"] == CHAT
    assert reply["text"].startswith("Terdaftar") and "Registered" not in reply["text"]
    with engine.connect() as c:
        sub = c.execute(sa.select(Subscriber).where(Subscriber.telegram_chat_id == CHAT)).one()
    assert sub.channels == ["telegram"] and sub.admin_code.startswith("72.71") and sub.active
    assert post(client, update("/berhenti")).json()["text"].startswith("Anda tidak akan menerima peringatan lagi")
    with engine.connect() as c:
        assert c.scalar(sa.select(Subscriber.active).where(Subscriber.telegram_chat_id == CHAT)) is False
    post(client, update("/mulai"))
    with engine.connect() as c:
        assert c.scalar(sa.select(Subscriber.active).where(Subscriber.telegram_chat_id == CHAT)) is True


def test_a_shared_location_registers_for_the_place_it_is_in(client, engine):
    r = post(client, update(location=(119.8707, -0.8917)))  # Kota Palu
    assert r.status_code == 200 and r.json()["text"].startswith("Terdaftar")
    with engine.connect() as c:
        code = c.scalar(sa.select(Subscriber.admin_code).where(Subscriber.telegram_chat_id == CHAT))
    assert code is not None and code.startswith("72.71")


def test_english_keyword_or_telegram_language_gets_the_english_reply(client):
    assert post(client, update("/register Palu Barat", language="en")).json()["text"].startswith("Registered")
    assert post(client, update("/register Palu Barat", language="")).json()["text"].startswith("Registered")
    assert post(client, update("/daftar Palu Barat", language="")).json()["text"].startswith("Terdaftar")
    assert post(client, update("/bantuan", language="en")).json()["text"] != post(client, update("/bantuan")).json()["text"]


def test_lapor_with_a_photo_is_a_report_and_a_replayed_update_is_ignored(client, engine):
    body = update("/lapor banjir setinggi lutut di Jl. Sudirman", photo=True, update_id=42)
    first = post(client, body)
    assert first.status_code == 200 and "laporan" in first.json()["text"].lower()
    again = post(client, body)
    assert again.status_code == 200 and again.content == b""
    [row] = reports(engine)
    assert (row.external_id, row.source, row.state) == ("42", "telegram", "new")


def test_a_report_with_a_location_is_placed_by_its_coordinates(client, engine):
    body = update("/lapor pohon tumbang", location=(119.87, -0.90))
    assert post(client, body).status_code == 200
    [row] = reports(engine)
    assert (row.lon, row.lat) == (119.87, -0.90)


def test_cek_and_hoaks_answer(client, engine):
    assert "ZZZZZZ" in post(client, update("/cek ZZZZZZ")).json()["text"]
    hoax = post(client, update("/hoaks Bendungan jebol, semua harus lari sekarang")).json()["text"]
    assert hoax
    kinds = {r.command for r in reports(engine)}
    assert {"check", "hoax"} <= kinds


def test_a_non_json_update_is_a_4xx(client):
    r = client.post(PATH, content=b"[1,2", headers={"X-Telegram-Bot-Api-Secret-Token": SECRET,
                                                    "Content-Type": "application/json"})
    assert r.status_code == 422


def held(engine):
    with engine.connect() as c:
        return c.execute(sa.select(Report.id, Report.external_id, Report.command, Report.processing, Report.lon,
                                   Report.lat, Report.lease_until).order_by(Report.id)).all()


@pytest.mark.parametrize("photo", [False, True], ids=["text", "photo"])
def test_a_location_sent_after_lapor_places_that_one_report_once(client, engine, photo):
    first = post(client, update("/lapor air naik cepat di Jl. Sudirman", photo=photo))
    assert first.status_code == 200 and "kirim lokasi anda" in first.json()["text"].lower()
    [lapor] = held(engine)
    assert (lapor.processing, lapor.lon, lapor.lat) == ("awaiting", None, None) and lapor.lease_until is not None
    location = update(location=(119.8707, -0.8917))
    placed = post(client, location)
    assert placed.status_code == 200 and placed.json()["text"].startswith(f"Lokasi diterima untuk laporan no. {lapor.id}")
    again = post(client, location)  # Telegram redelivers the same update_id
    assert again.status_code == 200 and again.content == b""
    rows = held(engine)
    assert [(r.command, r.processing, r.lon, r.lat) for r in rows] == [
        (None, "pending", 119.8707, -0.8917),  # the report, placed by the coordinates and now enriched
        ("location", "skipped", None, None),  # the location message, kept raw, never a report of its own
    ]
    with engine.connect() as c:  # the location placed the report: it did not register the chat
        assert c.scalar(sa.select(sa.func.count()).select_from(Subscriber)
                        .where(Subscriber.telegram_chat_id == CHAT)) == 0


def test_a_location_sent_before_lapor_places_it_and_registers_the_chat(client, engine):
    assert post(client, update(location=(119.8707, -0.8917))).json()["text"].startswith("Terdaftar")
    reply = post(client, update("/lapor pohon tumbang")).json()["text"]
    assert reply.startswith("Laporan diterima") and "lokasi" not in reply.lower()
    report = next(r for r in held(engine) if r.command is None)
    assert (report.processing, report.lon, report.lat) == ("pending", 119.8707, -0.8917)
    # Used once: the next /lapor waits for a location of its own.
    assert "kirim lokasi" in post(client, update("/lapor jalan putus")).json()["text"].lower()


def test_after_the_window_the_report_is_enriched_as_it_is_and_a_location_registers(client, engine):
    import time_machine

    from broadcast.reports import enrichment

    start = datetime.now(UTC)
    with time_machine.travel(start, tick=False):
        post(client, update("/lapor banjir"))
        [lapor] = held(engine)
        with session_scope(engine) as s:
            assert lapor.id not in enrichment.claim_pending(s)  # held while its location may still come
            assert enrichment.count_pending(s) == 0
    with time_machine.travel(start + timedelta(seconds=121), tick=False):
        reply = post(client, update(location=(119.8707, -0.8917))).json()["text"]
        assert reply.startswith("Terdaftar")  # too late for the report: the location registers as usual
        with session_scope(engine) as s:
            assert enrichment.count_pending(s) == 1
            assert enrichment.claim_pending(s) == [lapor.id]
    rows = held(engine)
    assert rows[0].lon is None and rows[1].command == "register"


def test_a_location_from_another_chat_does_not_place_the_report(client, engine):
    post(client, update("/lapor banjir"))
    other = update(location=(119.8707, -0.8917))
    other["message"]["chat"]["id"] = other["message"]["from"]["id"] = CHAT + 1
    assert post(client, other).json()["text"].startswith("Terdaftar")
    assert held(engine)[0].processing == "awaiting"

"""POST /webhooks/twilio/whatsapp: signed like SMS, each message stored once, every citizen command answers in
the sender's language, shared locations place registrations and reports, replies only inside the session window."""

import itertools
from datetime import timedelta
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from twilio.request_validator import RequestValidator

from broadcast.api.app import create_app
from broadcast.db import utcnow
from broadcast.reports.models import Report
from broadcast.settings import Settings
from broadcast.subscribers.models import Subscriber
from broadcast.webhooks import service
from channels.whatsapp.inbound import parse_inbound
from tests.conftest import TEST_REDIS_URL
from tests.factories import seed

pytestmark = pytest.mark.integration
TOKEN = "whatsapp-webhook-test-token"
PUBLIC = "http://127.0.0.1:8000"
PATH = "/webhooks/twilio/whatsapp"
CITIZEN = "+6281377712345"
_ids = itertools.count(1)


@pytest.fixture
def settings(db_url):
    return Settings(environment="test", database_url=db_url, broker_url=TEST_REDIS_URL, public_base_url=PUBLIC,
                    secret_key="a-test-secret-key-0123456789abcdef", twilio={"webhook_test_token": TOKEN})


@pytest.fixture
def client(settings, engine):
    seed(engine)
    with TestClient(create_app(settings)) as app:
        yield app


def form(body="", *, sid=None, sender=CITIZEN, location=None, photo=None):
    out = {"MessageSid": sid or f"SM{next(_ids):032x}", "AccountSid": "AC" + "f" * 32,
           "From": f"whatsapp:{sender}", "To": "whatsapp:+6281100000000", "Body": body,
           "WaId": sender.lstrip("+"), "ProfileName": "Ibu Warga", "NumMedia": "0", "NumSegments": "1"}
    if location is not None:
        out.update({"Longitude": str(location[0]), "Latitude": str(location[1])})
    if photo is not None:
        out.update({"NumMedia": "1", "MediaUrl0": photo, "MediaContentType0": "image/jpeg"})
    return out


def sign(data, *, path=PATH, token=TOKEN, base=PUBLIC):
    return RequestValidator(token).compute_signature(base + path, data)


def post(client, data, signature="auto", path=PATH):
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if signature == "auto":
        signature = sign(data, path=path)
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    return client.post(path, content=urlencode(data), headers=headers)


def reply(response):
    assert response.status_code == 200, response.text
    text = response.text
    return text.split("<Message>", 1)[1].split("</Message>", 1)[0] if "<Message>" in text else ""


def reports(engine):
    with engine.connect() as c:
        return c.execute(sa.select(Report).order_by(Report.id)).all()


def subscriber(engine):
    with engine.connect() as c:
        return c.execute(sa.select(Subscriber).where(Subscriber.phone == CITIZEN)).one_or_none()


def counts(engine):
    from broadcast.db import Base

    with engine.connect() as c:
        return {n: c.scalar(sa.select(sa.func.count()).select_from(t)) for n, t in Base.metadata.tables.items()}


def test_forged_or_replayed_elsewhere_is_403_and_nothing_is_stored(client, engine):
    data = form("LAPOR banjir setinggi lutut")
    before = counts(engine)
    attacks = {
        "no signature": None,
        "empty signature": "",
        "wrong token": sign(data, token="not-the-token"),
        "another host": sign(data, base="https://evil.example"),
        "tampered sender": sign({**data, "From": "whatsapp:+6281377700000"}),
        "signed for the SMS webhook (replayed here)": sign(data, path="/webhooks/twilio/inbound"),
    }
    for attack, signature in attacks.items():
        r = post(client, data, signature)
        assert r.status_code == 403 and r.json()["type"] == "/problems/invalid-signature", attack
    assert counts(engine) == before


def test_a_replayed_message_is_stored_once_and_answered_the_same(client, engine):
    data = form("LAPOR pohon tumbang di Jl. Sudirman", photo="https://api.twilio.com/2010-04-01/Media/ME1")
    answers = {post(client, data).text for _ in range(3)}
    [row] = reports(engine)
    assert len(answers) == 1 and row.source == "whatsapp" and row.state == "new"
    assert row.raw["MediaUrl0"].endswith("/ME1")  # the photo is kept with the report
    assert CITIZEN not in str(row.raw) and "Ibu Warga" not in str(row.raw)  # number, WaId, name: hashed


def test_daftar_registers_the_number_for_whatsapp_and_replies_in_indonesian(client, engine):
    text = reply(post(client, form("DAFTAR Palu Barat")))
    assert text.startswith("Terdaftar") and "Registered" not in text
    sub = subscriber(engine)
    assert sub.channels == ["whatsapp"] and sub.admin_code.startswith("72.71") and sub.active
    assert reply(post(client, form("BERHENTI"))).startswith("Anda tidak akan menerima peringatan lagi")
    assert subscriber(engine).active is False
    assert reply(post(client, form("MULAI")))
    assert subscriber(engine).active is True


def test_an_sms_subscriber_who_registers_by_whatsapp_gets_both(client, engine):
    with engine.begin() as c:
        phone = c.scalar(sa.select(Subscriber.phone).order_by(Subscriber.id).limit(1))
    assert reply(post(client, form("daftar Palu Barat", sender=phone))).startswith("Terdaftar")
    with engine.connect() as c:
        assert c.scalar(sa.select(Subscriber.channels).where(Subscriber.phone == phone)) == ["sms", "whatsapp"]


def test_english_keywords_get_english_replies(client):
    assert reply(post(client, form("REGISTER Palu Barat"))).startswith("Registered")
    assert reply(post(client, form("HELP"))) != reply(post(client, form("BANTUAN")))
    assert "Terdaftar" not in reply(post(client, form("STOP")))


def test_a_shared_location_registers_for_the_place_it_is_in(client, engine):
    text = reply(post(client, form("", location=(119.8707, -0.8917))))  # Kota Palu
    assert text.startswith("Terdaftar")
    assert subscriber(engine).admin_code.startswith("72.71")


def test_a_report_with_a_location_is_placed_by_its_coordinates(client, engine):
    assert "laporan" in reply(post(client, form("LAPOR jembatan putus", location=(119.87, -0.90)))).lower()
    [row] = reports(engine)
    assert (row.lon, row.lat) == (119.87, -0.90) and row.text == "jembatan putus"


def test_cek_and_hoaks_answer(client, engine):
    assert "ZZZZZZ" in reply(post(client, form("CEK ZZZZZZ")))
    assert reply(post(client, form("HOAKS Bendungan jebol, semua harus lari sekarang")))
    assert {"check", "hoax"} <= {r.command for r in reports(engine)}


def test_a_status_callback_or_an_sms_form_is_a_4xx_here(client, engine):
    status = {"MessageSid": "SM" + "9" * 32, "MessageStatus": "read", "From": f"whatsapp:{CITIZEN}"}
    assert post(client, status).status_code == 422
    sms = {**form("LAPOR x"), "From": CITIZEN}
    assert post(client, sms).status_code == 422
    assert reports(engine) == []


def test_free_form_replies_only_inside_the_24_hour_session(session, engine, settings):
    data = form("BANTUAN")
    message = parse_inbound(data)
    first = service.handle_inbound_whatsapp(session, message=message, form=data, author_key=b"k" * 32,
                                            public_base_url=PUBLIC)
    session.commit()
    assert "<Message>" in first
    later = utcnow() + timedelta(hours=23)
    assert service.handle_inbound_whatsapp(session, message=message, form=data, author_key=b"k" * 32,
                                           public_base_url=PUBLIC, now=later) == first
    expired = utcnow() + timedelta(hours=25)  # Twilio retried it a day later: the window it opened has closed
    late = service.handle_inbound_whatsapp(session, message=message, form=data, author_key=b"k" * 32,
                                           public_base_url=PUBLIC, now=expired)
    assert "<Message>" not in late

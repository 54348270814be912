"""POST /webhooks/smsgateway: signed, fresh, once; every citizen command through the gateway answers in the
sender's language; delivery states move deliveries; a real worker sends the answer through the real client to
the fake gateway."""

import time

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from broadcast.alerts import service as alerts
from broadcast.alerts.schemas import AlertCreate
from broadcast.api.app import create_app
from broadcast.db import session_scope
from broadcast.dispatch import claims, outcomes, pacing, plan
from broadcast.dispatch.models import Delivery
from broadcast.reports.models import Report
from broadcast.settings import Settings
from broadcast.subscribers.models import Subscriber
from broadcast.trust.models import HoaxReport, TrustReply
from broadcast.users.models import User
from channels.smsgateway.channel import GatewaySmsRenderer
from channels.smsgateway.sender import SimGateway
from channels.smsgateway.settings import SmsGatewayConfig
from tests.conftest import TEST_REDIS_URL
from tests.factories import alert_payload, make_subscribers, make_team
from tests.fakes.smsgateway import FakeSmsGateway, Webhook

pytestmark = pytest.mark.integration
PATH = "/webhooks/smsgateway"
CITIZEN = "+6281377712345"
BASE = "http://127.0.0.1:8000"


@pytest.fixture
def fake():
    with FakeSmsGateway() as f:
        yield f


def make_settings(db_url, fake, **kw):
    return Settings(environment="test", database_url=db_url, broker_url=TEST_REDIS_URL,
                    secret_key="a-test-secret-key-0123456789abcdef",
                    smsgateway={"signing_key": fake.signing_key, **kw})


@pytest.fixture
def client(db_url, engine, redis_url, fake):
    with session_scope(engine) as s:
        make_team(s)
        make_subscribers(s)
    with TestClient(create_app(make_settings(db_url, fake))) as c:
        yield c


def post(client, hook: Webhook, **headers):
    return client.post(PATH, content=hook.body, headers={**hook.headers, **headers})


def rows(engine, model, *cols):
    with engine.connect() as c:
        return c.execute(sa.select(*(getattr(model, col) for col in cols))).all()


def answers(engine) -> list[str]:
    with engine.connect() as c:
        return list(c.scalars(sa.select(TrustReply.text).where(TrustReply.kind == "answer").order_by(TrustReply.id)))


def test_forged_stale_and_replayed_events_are_refused_and_nothing_is_stored(client, engine, fake):
    good = fake.received(CITIZEN, "LAPOR banjir setinggi lutut")
    forged = {
        "no signature": post(client, good, **{"X-Signature": ""}),
        "no timestamp": post(client, good, **{"X-Timestamp": ""}),
        "signed with another key": post(client, FakeSmsGateway(signing_key="not-our-key").received(CITIZEN, "LAPOR x")),
        "tampered body": client.post(PATH, content=good.body.replace(b"banjir", b"gempa "), headers=good.headers),
        "timestamp moved": post(client, good, **{"X-Timestamp": str(int(good.headers["X-Timestamp"]) + 1)}),
        "stale (signed 6 min ago)": post(client, fake.received(CITIZEN, "LAPOR lama", at=time.time() - 360)),
        "from the future (6 min ahead)": post(client, fake.received(CITIZEN, "LAPOR nanti", at=time.time() + 360)),
    }
    for attack, r in forged.items():
        assert r.status_code == 403, (attack, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    assert rows(engine, Report, "id") == []
    first = post(client, good)
    assert first.status_code == 200
    again = post(client, good)  # the same signed request, replayed within the window
    assert again.status_code == 403 and again.json()["type"] == "/problems/replayed-event"
    assert len(rows(engine, Report, "id")) == 1 and len(answers(engine)) == 1


def test_the_gateways_own_retry_is_signed_anew_and_changes_nothing(client, engine, fake):
    hook = fake.received(CITIZEN, "DAFTAR Palu Barat")
    assert post(client, hook).status_code == 200
    event = hook.event
    retry = fake.webhook("sms:received", event["payload"], at=time.time() + 1, event_id=event["id"])
    assert post(client, retry).status_code == 200
    assert len(rows(engine, Report, "id")) == 1 and len(answers(engine)) == 1


def test_without_a_signing_key_every_event_is_refused(db_url, engine, redis_url, fake):
    with TestClient(create_app(make_settings(db_url, fake, signing_key=""))) as c:
        r = post(c, fake.received(CITIZEN, "LAPOR banjir"))
    assert r.status_code == 503 and r.json()["type"] == "/problems/smsgateway-webhook-not-configured"
    assert rows(engine, Report, "id") == []


def test_daftar_berhenti_mulai_answer_in_the_senders_language(client, engine, fake):
    assert post(client, fake.received(CITIZEN, "DAFTAR Palu Barat")).status_code == 200
    with engine.connect() as c:
        sub = c.execute(sa.select(Subscriber).where(Subscriber.phone == CITIZEN)).one()
    assert sub.admin_code.startswith("72.71") and sub.active
    post(client, fake.received(CITIZEN, "BERHENTI"))
    with engine.connect() as c:
        assert c.scalar(sa.select(Subscriber.active).where(Subscriber.phone == CITIZEN)) is False
    post(client, fake.received(CITIZEN, "MULAI"))
    with engine.connect() as c:
        assert c.scalar(sa.select(Subscriber.active).where(Subscriber.phone == CITIZEN)) is True
    post(client, fake.received("+6281377712346", "REGISTER Palu Barat"))
    post(client, fake.received("+6281377712346", "STOP"))
    got = answers(engine)
    assert got[0].startswith("Terdaftar") and "Registered" not in got[0]
    assert got[1].startswith("Anda tidak akan menerima peringatan lagi") and "/" not in got[1]
    assert got[3].startswith("Registered") and got[4].startswith("You will no longer receive alerts")
    with engine.connect() as c:
        addresses = set(c.scalars(sa.select(TrustReply.address).where(TrustReply.kind == "answer")))
    assert addresses == {CITIZEN, "+6281377712346"}  # kept only until the answer is sent


def test_lapor_cek_hoaks_bantuan_info(client, engine, fake):
    for text in ("LAPOR pohon tumbang di Jl. Hasanuddin", "CEK ZZZZZZ", "HOAKS Bendungan jebol, semua lari sekarang",
                 "BANTUAN", "HELP", "INFO", "LAPOR"):
        assert post(client, fake.received(CITIZEN, text)).status_code == 200, text
    got = answers(engine)
    assert "laporan" in got[0].lower() and "ZZZZZZ" in got[1] and got[2]
    assert got[3] != got[4] and len(got) == 7
    kinds = {r.command for r in rows(engine, Report, "command")}
    assert {None, "check", "hoax", "help", "info"} <= kinds
    assert rows(engine, HoaxReport, "source") == [("smsgateway",)]
    reports = rows(engine, Report, "state", "text", "command")
    assert [r.text for r in reports if r.state == "new"] == ["pohon tumbang di Jl. Hasanuddin"]
    assert [r.state for r in reports if r.command is None and r.text == "LAPOR"] == ["dismissed"]


def test_a_lapor_with_coordinates_is_placed_by_them_and_a_bare_location_registers(client, engine, fake):
    post(client, fake.received(CITIZEN, "LAPOR banjir https://maps.google.com/?q=-0.8917,119.8707"))
    [row] = rows(engine, Report, "lon", "lat", "text")
    assert (row.lon, row.lat, row.text) == (119.8707, -0.8917, "banjir")
    post(client, fake.received("+6281377712347", "-0.8917, 119.8707"))  # Kota Palu
    with engine.connect() as c:
        code = c.scalar(sa.select(Subscriber.admin_code).where(Subscriber.phone == "+6281377712347"))
    assert code is not None and code.startswith("72.71")


def test_a_non_mobile_sender_is_stored_but_never_answered(client, engine, fake):
    assert post(client, fake.received("TELKOMSEL", "Paket data Anda hampir habis")).status_code == 200
    assert len(rows(engine, Report, "id")) == 1 and answers(engine) == []


def test_a_bad_event_is_a_4xx_and_other_events_are_acknowledged(client, engine, fake):
    assert post(client, fake.webhook("sms:received", {"message": "x"})).status_code == 422
    assert post(client, fake.webhook("system:ping", {"health": {"status": "pass"}})).status_code == 200
    bad = fake.webhook("x", {})
    body = b"[1,2"
    from channels.smsgateway.inbound import sign

    stamp = bad.headers["X-Timestamp"]
    r = client.post(PATH, content=body, headers={"X-Signature": sign(fake.signing_key, body, stamp), "X-Timestamp": stamp})
    assert r.status_code == 422
    assert rows(engine, Report, "id") == []


def test_delivery_states_from_the_gateway_move_the_deliveries(client, engine, fake):
    with session_scope(engine) as s:
        team = {u.username: u for u in s.scalars(sa.select(User))}
        for phone in ("+6281377700001", "+6281377700002"):
            s.add(Subscriber(phone=phone, admin_code="72.71.01.1004", language="id", channels=["smsgateway"]))
        s.flush()
        data = AlertCreate(**alert_payload("Exercise", channels=["smsgateway"]))
        alert = alerts.create_alert(s, data=data, author=team["op.palu"], sender="t@x")
        alerts.submit_alert(s, alert_id=alert.id, actor=team["op.palu"])
        alerts.approve_alert(s, alert_id=alert.id, approver=team["apv.sulteng"], production=True)
    with session_scope(engine) as s:
        planned = plan.plan_alert(s, alert_id=alert.id)["smsgateway"]
    assert len(planned) == 2
    fake.undeliverable.add("+6281377700002")
    config = SmsGatewayConfig(base_url=fake.base_url, username=fake.username, password=fake.password)
    senders = {"smsgateway": SimGateway(GatewaySmsRenderer(), config=config)}
    with session_scope(engine) as s:
        batch = claims.claim(s, delivery_ids=planned, lease_s=60, public_base_url=BASE)
    with session_scope(engine) as s:
        outcomes.record_results(s, sent=pacing.send_claimed(batch, channels=senders))
    assert sorted(m["phone"] for m in fake.sent) == ["+6281377700001", "+6281377700002"]
    assert fake.sent[0]["text"].startswith("[LATIHAN]")
    for hook in fake.process():
        assert post(client, hook).status_code == 200
    with engine.connect() as c:
        states = dict(c.execute(sa.select(Subscriber.phone, Delivery.state).join(
            Subscriber, Subscriber.id == Delivery.subscriber_id).where(Delivery.channel == "smsgateway")).all())
    assert states == {"+6281377700001": "delivered", "+6281377700002": "failed"}


def settled(engine) -> int:
    """Answers sent, or held back by the phone's limit (pending with the wait noted)."""
    with engine.connect() as c:
        return int(c.scalar(sa.select(sa.func.count()).select_from(TrustReply).where(
            TrustReply.kind == "answer", sa.or_(TrustReply.state == "sent", TrustReply.error.like("rate limit%")))) or 0)


def test_a_real_worker_sends_the_answer_through_the_gateway_once(db_url, engine, redis_url, fake, monkeypatch):
    from celery.contrib.testing.worker import start_worker

    from broadcast.runtime import active_channels, rate_limiter
    from broadcast.settings import get_settings
    from broadcast.worker import celery

    env = {"BROADCAST_ENVIRONMENT": "production", "BROADCAST_DATABASE_URL": db_url,
           "BROADCAST_SECRET_KEY": "a-real-production-secret-42", "BROADCAST_ENABLED_CHANNELS": '["smsgateway"]',
           "BROADCAST_SMSGATEWAY__BASE_URL": fake.base_url, "BROADCAST_SMSGATEWAY__USERNAME": fake.username,
           "BROADCAST_SMSGATEWAY__PASSWORD": fake.password, "BROADCAST_SMSGATEWAY__SIGNING_KEY": fake.signing_key,
           "BROADCAST_SMSGATEWAY__ANDROID_MAX_COUNT": "3"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    active_channels.cache_clear()
    rate_limiter.cache_clear()
    try:
        settings = get_settings()
        with session_scope(engine) as s:
            make_team(s)
        with TestClient(create_app(settings)) as c, start_worker(
                celery, pool="solo", perform_ping_check=False, shutdown_timeout=30, queues=["intake"]):
            phones = [f"+62813777100{i:02d}" for i in range(4)]
            for phone in phones:
                assert post(c, fake.received(phone, "DAFTAR Palu Barat")).status_code == 200
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and settled(engine) < len(phones):
                time.sleep(0.1)
            time.sleep(0.5)  # nothing more goes: the rest wait for the phone's window, never over it
            sent = fake.sent
        with engine.connect() as conn:
            replies = conn.execute(sa.select(TrustReply.state, TrustReply.address, TrustReply.error)
                                   .where(TrustReply.kind == "answer").order_by(TrustReply.id)).all()
    finally:
        get_settings.cache_clear()
        active_channels.cache_clear()
        rate_limiter.cache_clear()
    # Android's window of 3 parts: the bucket lets one through now and refills two over 30 minutes; the rest wait.
    assert fake.violations == 0
    assert [m["phone"] for m in sent] == phones[: len(sent)] and 1 <= len(sent) <= 3
    assert all(m["text"].startswith("Terdaftar") for m in sent)
    assert [r.state for r in replies][: len(sent)] == ["sent"] * len(sent)
    assert all(r.address.count("*") > 0 for r in replies if r.state == "sent")  # number masked once sent
    waiting = [r for r in replies if r.state == "pending"]
    assert len(waiting) == 4 - len(sent) and all("rate limit" in (r.error or "") for r in waiting)

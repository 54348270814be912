"""The SMS channel end to end on the service side: live TwilioSms (real SDK) against the fake Twilio server,
signed status callbacks and inbound SMS through the real FastAPI routes, on SQLite and PostgreSQL."""

import re
from dataclasses import replace
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from twilio.request_validator import RequestValidator

from broadcast.alerts import service as alerts
from broadcast.alerts.schemas import AlertCreate
from broadcast.api.app import create_app
from broadcast.audit.models import AuditEntry
from broadcast.db import session_scope
from broadcast.dispatch import planning
from broadcast.dispatch.claims import claim
from broadcast.dispatch.models import Delivery
from broadcast.dispatch.outcomes import record_results, retry_after_hint
from broadcast.dispatch.pacing import send_claimed
from broadcast.dispatch.plan import plan_alert
from broadcast.dispatch.wiring import build_active_channels, channel_config
from broadcast.reports.models import Report
from broadcast.settings import Settings
from broadcast.subscribers.models import Subscriber
from channels.outbox import Outbox
from channels.sms import TwilioSms
from tests.conftest import TEST_REDIS_URL
from tests.factories import PASSWORD, alert_payload, make_subscribers, make_team
from tests.fakes.twilio import FakeTwilio, query_of

pytestmark = pytest.mark.integration
PUBLIC = "https://bpbd-palu.example.id"
STATUS_URL = PUBLIC + "/webhooks/twilio/status"
INBOUND_URL = PUBLIC + "/webhooks/twilio/inbound"
REDIS = TEST_REDIS_URL
CITIZEN = "+6281377712345"


@pytest.fixture
def fake():
    with FakeTwilio() as f:
        yield f


@pytest.fixture
def settings(db_url, redis_url, fake):
    return Settings(
        environment="production",
        database_url=db_url,
        broker_url=REDIS,
        secret_key="a-real-production-secret-42",
        public_base_url=PUBLIC,
        twilio={
            "account_sid": fake.account_sid,
            "auth_token": fake.auth_token,
            "messaging_service_sid": "MG" + "a" * 32,
            "max_concurrency": 4,
        },
    )


@pytest.fixture
def channels(settings, fake):
    built = build_active_channels(settings, configs={"sms": replace(channel_config(settings, "sms"), api_base_url=fake.url)})
    yield built
    built["sms"].close()


@pytest.fixture
def world(engine):
    with session_scope(engine) as s:
        team = make_team(s)
        subs = make_subscribers(s)
    return team, subs


@pytest.fixture
def client(settings, world):
    with TestClient(create_app(settings)) as c:
        yield c


def _approved(session, team):
    alert = alerts.create_alert(
        session, data=AlertCreate(**alert_payload("Actual")), author=team["operator"], sender="bpbd@palu"
    )
    alerts.submit_alert(session, alert_id=alert.id, actor=team["operator"])
    alerts.approve_alert(session, alert_id=alert.id, approver=team["approver"], production=True)
    session.commit()
    return alert


def _send(session, settings, channels, ids):
    batch = claim(session, delivery_ids=ids, lease_s=60, public_base_url=settings.public_base_url)
    session.commit()
    sent = send_claimed(batch, channels=channels)
    retry = record_results(session, sent=sent)
    session.commit()
    return sent, retry


def _sign(token, url, form):
    return RequestValidator(token).compute_signature(url, form)


def _post_signed(client, token, path, form, query=""):
    url = PUBLIC + path + (f"?{query}" if query else "")
    return client.post(
        path + (f"?{query}" if query else ""),
        content=urlencode(form),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": _sign(token, url, form)},
    )


def _status_form(sid, status, code=None):
    form = {
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "AccountSid": "AC" + "f" * 32,
        "From": "+15005550006",
        "To": "+6281299000001",
    }
    if code is not None:
        form["ErrorCode"] = str(code)
    return form


def _inbound_form(sid, body, sender=CITIZEN):
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": "AC" + "f" * 32,
        "From": sender,
        "To": "+6281100000000",
        "Body": body,
        "NumMedia": "0",
        "NumSegments": "1",
    }


def _row(engine, delivery_id):
    with engine.connect() as c:
        return c.execute(sa.select(Delivery).where(Delivery.id == delivery_id)).one()


def test_production_settings_build_live_twilio_and_never_elsewhere(settings, channels, fake):
    assert isinstance(channels["sms"], TwilioSms) and channels["sms"].mode == "live"
    assert isinstance(channels["social"], Outbox)  # X has no credentials here
    staging = settings.model_copy(update={"environment": "staging"})
    assert isinstance(build_active_channels(staging)["sms"], Outbox)
    assert channel_config(settings, "sms").status_callback_url == STATUS_URL


def test_fanout_through_the_real_sdk(session, settings, channels, fake, world):
    team, subs = world
    rejected_sub = session.get(Subscriber, subs["palu"][1])
    fake.reject_number(rejected_sub.phone, code=21211)
    alert = _approved(session, team)
    planned = plan_alert(session, alert_id=alert.id)
    session.commit()
    ids = planned["sms"]
    assert len(ids) == len(subs["palu"]) == 4

    fake.fail_next(1, status=429, code=20429, retry_after="7")
    sent, retry = _send(session, settings, channels, ids)
    posts = [r for r in fake.requests if r.method == "POST"]
    assert len(posts) == len(ids)  # N rows -> N requests
    assert all(r.authorized and r.form["MessagingServiceSid"].startswith("MG") for r in posts)
    assert len(retry) == 1  # the 429
    assert planning.retry_countdown(0, retry_after_hint(sent, retry)) == 7.0

    _, retry_again = _send(session, settings, channels, retry)
    assert retry_again == []
    assert len([r for r in fake.requests if r.method == "POST"]) == len(ids) + 1
    _send(session, settings, channels, ids)  # the whole batch task delivered again: nothing reaches Twilio
    assert len([r for r in fake.requests if r.method == "POST"]) == len(ids) + 1

    session.expire_all()
    rows = {r.subscriber_id: r for r in session.scalars(sa.select(Delivery).where(Delivery.channel == "sms"))}
    failed = rows.pop(rejected_sub.id)
    assert failed.state == "failed" and "21211" in failed.error and failed.provider_id is None
    stored_sids = {m["sid"]: m for m in fake.messages}
    assert all(r.state == "sent" and r.provider_id in stored_sids for r in rows.values())
    for r in rows.values():
        message = stored_sids[r.provider_id]
        assert message["to"] == session.get(Subscriber, r.subscriber_id).phone
    callbacks = [r.form["StatusCallback"] for r in posts if "StatusCallback" in r.form]
    assert callbacks and all(c.startswith(STATUS_URL + "?delivery=") for c in callbacks)
    assert {int(query_of(c)["delivery"][0]) for c in callbacks} <= set(ids)


def _sent_alert(session, settings, channels, team):
    alert = _approved(session, team)
    planned = plan_alert(session, alert_id=alert.id)
    session.commit()
    _send(session, settings, channels, planned["sms"])
    session.expire_all()
    return alert, list(session.scalars(sa.select(Delivery).where(Delivery.channel == "sms").order_by(Delivery.id)))


def _login(client, username):
    r = client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_signed_status_callbacks_move_rows_forward_only(client, session, engine, settings, channels, fake, world):
    team, _ = world
    alert, rows = _sent_alert(session, settings, channels, team)
    token = fake.auth_token
    first = rows[0]
    path, query = "/webhooks/twilio/status", f"delivery={first.id}"

    r = _post_signed(client, token, path, _status_form(first.provider_id, "sent"), query)
    assert r.status_code == 200, r.text
    r = _post_signed(client, token, path, _status_form(first.provider_id, "delivered"), query)
    assert r.status_code == 200
    row = _row(engine, first.id)
    assert row.state == "delivered" and row.provider_status == "delivered" and row.delivered_at is not None
    stamp = row.provider_status_at

    # Replayed, and an older status arriving late: nothing changes.
    assert _post_signed(client, token, path, _status_form(first.provider_id, "delivered"), query).status_code == 200
    assert _post_signed(client, token, path, _status_form(first.provider_id, "sent"), query).status_code == 200
    row = _row(engine, first.id)
    assert row.state == "delivered" and row.provider_status_at == stamp

    # No delivery id in the URL: found by MessageSid.
    second = rows[1]
    r = _post_signed(client, token, path, _status_form(second.provider_id, "undelivered", 30003))
    assert r.status_code == 200
    row = _row(engine, second.id)
    assert row.state == "undelivered" and row.provider_error_code == 30003
    assert session.get(Subscriber, second.subscriber_id).active  # 30003 is transient: the number stays

    counts = client.get(f"/api/v1/alerts/{alert.id}/deliveries", headers=_login(client, "op.palu")).json()
    sms = next(c for c in counts if c["channel"] == "sms")
    assert sms["mode"] == "live"
    assert sms["by_state"]["delivered"] == 1 and sms["by_state"]["undelivered"] == 1
    assert sms["by_state"]["sent"] == len(rows) - 2


def test_opt_out_code_stops_the_subscriber(client, session, engine, settings, channels, fake, world):
    team, _ = world
    _, rows = _sent_alert(session, settings, channels, team)
    target = rows[2]
    r = _post_signed(
        client,
        fake.auth_token,
        "/webhooks/twilio/status",
        _status_form(target.provider_id, "undelivered", 21610),
        f"delivery={target.id}",
    )
    assert r.status_code == 200
    session.expire_all()
    sub = session.get(Subscriber, target.subscriber_id)
    assert not sub.active and sub.stop_reason == "twilio-opt-out"
    trail = session.scalars(
        sa.select(AuditEntry.action).where(AuditEntry.subject_type == "subscriber", AuditEntry.subject_id == sub.id)
    ).all()
    assert trail[-1] == "subscriber.stop"
    # A later alert plans no row for them.
    alert2 = _approved(session, team)
    planned = plan_alert(session, alert_id=alert2.id)
    session.commit()
    planned_subs = set(session.scalars(sa.select(Delivery.subscriber_id).where(Delivery.id.in_(planned["sms"]))))
    assert sub.id not in planned_subs


@pytest.mark.parametrize("how", ["forged", "unsigned", "other-url", "other-token"])
def test_unverified_status_callbacks_are_refused_and_change_nothing(
    how, client, session, engine, settings, channels, fake, world
):
    team, _ = world
    _, rows = _sent_alert(session, settings, channels, team)
    target = rows[0]
    form = _status_form(target.provider_id, "delivered")
    path = f"/webhooks/twilio/status?delivery={target.id}"
    signature = {
        "forged": "dGhpcyBpcyBub3QgYSBzaWduYXR1cmU=",
        "unsigned": None,
        "other-url": _sign(fake.auth_token, "http://testserver" + path, form),
        "other-token": _sign("not-the-token", PUBLIC + path, form),
    }[how]
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if signature:
        headers["X-Twilio-Signature"] = signature
    before = _row(engine, target.id)
    r = client.post(path, content=urlencode(form), headers=headers)
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"] == "/problems/invalid-signature"
    assert _row(engine, target.id) == before


def test_inbound_register_with_a_typo_stop_and_replay(client, session, engine, settings, fake, world):
    team, _ = world
    token = fake.auth_token
    path = "/webhooks/twilio/inbound"
    r = _post_signed(client, token, path, _inbound_form("SM" + "1" * 32, "daftar  Tanamodindy"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
    assert "Terdaftar" in r.text and "Tanamodindi" in r.text and "<Message>" in r.text
    sub = session.scalar(sa.select(Subscriber).where(Subscriber.phone == CITIZEN))
    assert sub.admin_code == "72.71.08.1004" and sub.active and sub.language == "id"

    # Twilio retries the same webhook: same reply, nothing new.
    again = _post_signed(client, token, path, _inbound_form("SM" + "1" * 32, "daftar  Tanamodindy"))
    assert again.status_code == 200 and again.text == r.text
    with engine.connect() as c:
        assert c.scalar(sa.select(sa.func.count()).select_from(Report)) == 1
        assert c.scalar(sa.select(sa.func.count()).where(Subscriber.phone == CITIZEN)) == 1

    # An alert for Kota Palu is planned for them ...
    alert = _approved(session, team)
    planned = plan_alert(session, alert_id=alert.id)
    session.commit()
    mine = session.scalar(sa.select(Delivery.id).where(Delivery.alert_id == alert.id, Delivery.subscriber_id == sub.id))
    assert mine in planned["sms"]
    # ... then they text BERHENTI mid fan-out: the planned row is skipped, never sent.
    r = _post_signed(client, token, path, _inbound_form("SM" + "2" * 32, "BERHENTI"))
    assert r.status_code == 200 and "tidak akan menerima" in r.text
    session.expire_all()
    assert not session.get(Subscriber, sub.id).active
    assert session.get(Delivery, mine).state == "skipped"
    batch = claim(session, delivery_ids=planned["sms"], lease_s=60, public_base_url=PUBLIC)
    session.commit()
    assert sub.phone not in {i.recipient.address for i in batch.items}
    # A later alert plans no row for them.
    alert2 = _approved(session, team)
    planned2 = plan_alert(session, alert_id=alert2.id)
    session.commit()
    assert sub.id not in set(session.scalars(sa.select(Delivery.subscriber_id).where(Delivery.id.in_(planned2["sms"]))))
    # MULAI brings them back.
    r = _post_signed(client, token, path, _inbound_form("SM" + "3" * 32, "mulai"))
    assert "aktif kembali" in r.text
    session.expire_all()
    assert session.get(Subscriber, sub.id).active
    actions = session.scalars(
        sa.select(AuditEntry.action).where(AuditEntry.subject_type == "subscriber", AuditEntry.subject_id == sub.id)
    ).all()
    assert actions == ["subscriber.register_sms", "subscriber.stop", "subscriber.start"]


def test_inbound_ambiguous_unknown_and_report(client, session, engine, fake, world):
    token, path = fake.auth_token, "/webhooks/twilio/inbound"
    r = _post_signed(client, token, path, _inbound_form("SM" + "4" * 32, "DAFTAR Tondo"))
    assert "72.71.08.1002" in r.text and "kecamatan" in r.text
    r = _post_signed(client, token, path, _inbound_form("SM" + "5" * 32, "REG Tondo, Mantikulore"))
    assert "Registered" in r.text
    r = _post_signed(client, token, path, _inbound_form("SM" + "6" * 32, "DAFTAR Xyzzyqwerty"))
    assert "tidak ditemukan" in r.text
    r = _post_signed(client, token, path, _inbound_form("SM" + "7" * 32, "LAPOR banjir 50 cm di RT 03 Tondo"))
    assert "Laporan diterima" in r.text
    report = session.scalar(sa.select(Report).where(Report.external_id == "SM" + "7" * 32))
    assert report.state == "new" and report.source == "sms" and report.command is None
    assert report.text == "banjir 50 cm di RT 03 Tondo"
    assert report.admin_code == "72.71.08.1002"  # where the sender registered
    assert report.raw["Body"] == "LAPOR banjir 50 cm di RT 03 Tondo" and report.raw["MessageSid"] == "SM" + "7" * 32
    assert len(report.author_hash) == 64
    with engine.connect() as c:
        stored = " ".join(str(row) for row in c.execute(sa.select(Report.raw, Report.text, Report.author_hash)))
    assert CITIZEN not in stored and CITIZEN[1:] not in stored
    assert session.scalar(sa.select(Subscriber.language).where(Subscriber.phone == CITIZEN)) == "en"


def test_advanced_opt_out_gets_an_empty_reply_but_still_stops(db_url, redis_url, engine, fake, world):
    settings = Settings(
        environment="production",
        database_url=db_url,
        broker_url=REDIS,
        secret_key="a-real-production-secret-42",
        public_base_url=PUBLIC,
        twilio={
            "account_sid": fake.account_sid,
            "auth_token": fake.auth_token,
            "messaging_service_sid": "MG" + "a" * 32,
            "advanced_opt_out": True,
        },
    )
    with TestClient(create_app(settings)) as client:
        path = "/webhooks/twilio/inbound"
        _post_signed(client, fake.auth_token, path, _inbound_form("SM" + "8" * 32, "DAFTAR Palu Barat"))
        r = _post_signed(client, fake.auth_token, path, _inbound_form("SM" + "9" * 32, "STOP"))
        assert r.status_code == 200 and r.text.endswith("<Response />")
    with engine.connect() as c:
        assert c.scalar(sa.select(Subscriber.active).where(Subscriber.phone == CITIZEN)) is False


@pytest.mark.parametrize(
    "body, content_type, status",
    [
        ("Body=" + "x" * 70_000, "application/x-www-form-urlencoded", 413),
        ('{"Body": "DAFTAR Palu"}', "application/json", 415),
        ("MessageSid=SM1&Body=halo", "application/x-www-form-urlencoded", 403),  # unsigned
    ],
)
def test_malformed_inbound_bodies_are_4xx_and_store_nothing(body, content_type, status, client, engine):
    r = client.post("/webhooks/twilio/inbound", content=body, headers={"Content-Type": content_type})
    assert r.status_code == status, r.text
    with engine.connect() as c:
        assert c.scalar(sa.select(sa.func.count()).select_from(Report)) == 0


def test_signed_but_incomplete_forms_are_422(client, engine, fake):
    r = _post_signed(client, fake.auth_token, "/webhooks/twilio/inbound", {"MessageSid": "SM1", "Body": "halo"})
    assert r.status_code == 422
    r = _post_signed(client, fake.auth_token, "/webhooks/twilio/status", {"MessageSid": "SM1"})
    assert r.status_code == 422
    r = _post_signed(client, fake.auth_token, "/webhooks/twilio/status", _status_form("SM1", "exploded"))
    assert r.status_code == 422
    bad = client.post(
        "/webhooks/twilio/inbound",
        content=b"Body=\xff\xfe",
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "x"},
    )
    assert bad.status_code == 422
    with engine.connect() as c:
        assert c.scalar(sa.select(sa.func.count()).select_from(Report)) == 0


def test_outside_production_webhooks_need_the_test_token(db_url, redis_url, engine, world):
    base = {
        "environment": "test",
        "database_url": db_url,
        "broker_url": REDIS,
        "public_base_url": PUBLIC,
        "twilio": {"auth_token": "a-real-token-that-must-not-be-used"},
    }
    form = _inbound_form("SM" + "a" * 32, "LAPOR pohon tumbang")
    with TestClient(create_app(Settings(**base))) as client:
        r = _post_signed(client, "a-real-token-that-must-not-be-used", "/webhooks/twilio/inbound", form)
        assert r.status_code == 503 and r.json()["type"] == "/problems/twilio-webhook-not-configured"
    base["twilio"] = {"webhook_test_token": "local-test-token"}
    with TestClient(create_app(Settings(**base))) as client:
        r = _post_signed(client, "local-test-token", "/webhooks/twilio/inbound", form)
        assert r.status_code == 200 and "Laporan diterima" in r.text


def test_info_lists_current_alerts_and_a_number_answers_an_ambiguous_daftar(client, session, engine, fake, world):
    """INFO answers with the current alerts for the sender's area; a bare number picks from the numbered list."""
    team, _ = world
    alert = alerts.create_alert(
        session, data=AlertCreate(**alert_payload("Actual")), author=team["operator"], sender="bpbd@palu"
    )
    alerts.submit_alert(session, alert_id=alert.id, actor=team["operator"])
    alerts.approve_alert(session, alert_id=alert.id, approver=team["approver"], production=True)
    session.commit()
    plan_alert(session, alert_id=alert.id)
    session.commit()
    token, path, phone = fake.auth_token, "/webhooks/twilio/inbound", "+6281299900777"

    def sms(n, body, sender=phone):
        return _post_signed(client, token, path, _inbound_form(f"SM{n:032d}", body, sender)).text

    listing = sms(1, "DAFTAR Tondo")
    assert "1)" in listing and "2)" in listing
    codes = re.findall(r"\[([\d.]+)\]", listing)
    chosen = sms(2, "1")
    assert "Terdaftar" in chosen or "Registered" in chosen
    sub = session.scalar(sa.select(Subscriber).where(Subscriber.phone == phone))
    assert sub is not None and sub.active and sub.admin_code == codes[0]
    assert "kedaluwarsa" in sms(3, "1")  # the list was answered already
    assert "kedaluwarsa" in sms(4, "2", sender="+6281299900778")  # nobody asked this sender anything
    info = sms(5, "INFO")
    if sub.admin_code.startswith("72.71"):
        assert "Banjir di Kota Palu" in info and f"/p/{alert.id}" in info
    else:
        assert "Tidak ada peringatan aktif" in info
    assert f"/p/{alert.id}" in sms(6, "INFO Palu Timur")
    assert "Tidak ada peringatan aktif" in sms(7, "INFO 33.15")


def test_rows_left_in_doubt_by_a_dead_worker_are_reconciled_not_resent(session, settings, channels, fake, world):
    """A worker claimed a batch, reached Twilio for some numbers, then died before recording anything.
    The next worker asks Twilio what it already holds: every recipient ends with exactly one message."""
    team, _ = world
    alert = _approved(session, team)
    planned = plan_alert(session, alert_id=alert.id)
    session.commit()
    ids = planned["sms"]
    dead = claim(session, delivery_ids=ids, lease_s=-1, public_base_url=settings.public_base_url)
    session.commit()
    sms = channels["sms"]
    messages = sms.render(dead.alert, [i.recipient for i in dead.items])
    got_through = {m.reference: sms.send(m) for m in messages[:2]}  # then the worker was killed -9
    assert len([r for r in fake.requests if r.method == "POST"]) == 2

    _, retry = _send(session, settings, channels, ids)
    assert retry == []
    posts = [r for r in fake.requests if r.method == "POST"]
    per_number = {}
    for r in posts:
        per_number[r.form["To"]] = per_number.get(r.form["To"], 0) + 1
    assert sorted(per_number.values()) == [1] * len(ids)  # nobody twice, nobody missed
    session.expire_all()
    for delivery_id, sid in got_through.items():
        row = session.get(Delivery, int(delivery_id))
        assert row.state == "sent" and row.provider_id == sid
    assert len([r for r in fake.requests if r.method == "GET"]) >= 1  # Twilio's message list was consulted


def test_when_the_provider_cannot_tell_the_message_is_sent_again(session, settings, channels, fake, world):
    team, _ = world
    alert = _approved(session, team)
    planned = plan_alert(session, alert_id=alert.id)
    session.commit()
    claim(session, delivery_ids=planned["sms"], lease_s=-1, public_base_url=settings.public_base_url)
    session.commit()
    fake.fail_next(1, status=500, code=20500)  # the list request fails: a duplicate beats a missing warning
    _, retry = _send(session, settings, channels, planned["sms"])
    posts = [r for r in fake.requests if r.method == "POST"]
    assert len(posts) + len(retry) == len(planned["sms"])

"""WhatsApp on the service side: the live channel (real twilio SDK) against the fake Twilio, with the fan-out's
claim/send/record, signed status callbacks, in-doubt reconciliation, the messaging tier kept in Redis and the
composer's warning, on SQLite and PostgreSQL."""

from dataclasses import replace
from urllib.parse import urlsplit

import pytest
import redis
import sqlalchemy as sa
from fastapi.testclient import TestClient

from broadcast.alerts import service as alerts
from broadcast.alerts.schemas import AlertCreate
from broadcast.api.app import create_app
from broadcast.db import utcnow
from broadcast.dispatch import claims, outcomes, pacing, plan
from broadcast.dispatch.models import Delivery
from broadcast.dispatch.ratelimit import RateLimiter
from broadcast.dispatch.wiring import build_active_channels, channel_config
from broadcast.settings import Settings
from broadcast.subscribers.models import Subscriber
from channels.whatsapp.render import WhatsAppRenderer
from channels.whatsapp.sender import TwilioWhatsApp
from channels.whatsapp.templates import bodies
from tests.conftest import TEST_REDIS_URL
from tests.factories import PASSWORD, alert_payload, seed
from tests.fakes.twilio import FakeTwilio

pytestmark = pytest.mark.integration
PUBLIC = "https://bpbd-palu.example.id"
FROM = "+6281100000000"
SIDS = {key: "HX" + f"{i:032x}" for i, key in enumerate(sorted(bodies()))}


@pytest.fixture
def fake():
    with FakeTwilio() as f:
        for key, sid in SIDS.items():
            f.add_content(sid, bodies()[key])
        yield f


@pytest.fixture
def redis_db():
    client = redis.Redis.from_url(TEST_REDIS_URL)
    for key in client.scan_iter("rl:whatsapp:tier:*"):
        client.delete(key)
    yield client
    for key in client.scan_iter("rl:whatsapp:tier:*"):
        client.delete(key)


def make_settings(db_url, fake, tier="250"):
    return Settings(
        environment="production",
        database_url=db_url,
        broker_url=TEST_REDIS_URL,
        secret_key="a-real-production-secret-42",
        public_base_url=PUBLIC,
        enabled_channels=["sms", "whatsapp", "web"],
        twilio={
            "account_sid": fake.account_sid,
            "auth_token": fake.auth_token,
            "messaging_service_sid": "MG" + "a" * 32,
            "max_concurrency": 4,
            "whatsapp": {"from_number": FROM, "content_sids": SIDS, "tier": tier, "portfolio": "test-portfolio"},
        },
    )


@pytest.fixture
def settings(db_url, fake):
    return make_settings(db_url, fake)


def live(settings, fake):
    return build_active_channels(
        settings,
        configs={
            "whatsapp": replace(channel_config(settings, "whatsapp"), api_base_url=fake.url, tier=2),
            "sms": replace(channel_config(settings, "sms"), api_base_url=fake.url),
        },
    )


@pytest.fixture
def channels(settings, fake):
    built = live(settings, fake)
    yield built
    built["whatsapp"].close()
    built["sms"].close()


@pytest.fixture
def world(engine):
    seeded = seed(engine)
    with engine.begin() as c:  # every subscriber on SMS and WhatsApp
        c.execute(sa.update(Subscriber).values(channels=["sms", "whatsapp"]))
    return seeded


def _approved(session, team):
    payload = alert_payload("Actual", channels=["whatsapp", "web"])
    alert = alerts.create_alert(session, data=AlertCreate(**payload), author=team["operator"], sender="bpbd@palu")
    alerts.submit_alert(session, alert_id=alert.id, actor=team["operator"])
    alerts.approve_alert(session, alert_id=alert.id, approver=team["approver"], production=True)
    session.commit()
    return alert


def _send(session, settings, channels, ids, limiter=None):
    batch = claims.claim(session, delivery_ids=ids, lease_s=60, public_base_url=settings.public_base_url)
    session.commit()
    sent = pacing.send_claimed(batch, channels=channels, limiter=limiter)
    retry = outcomes.record_results(session, sent=sent)
    session.commit()
    return sent, retry


def _rows(session):
    session.commit()  # end the read snapshot: see what the app and workers wrote since
    session.expire_all()
    return list(session.scalars(sa.select(Delivery).where(Delivery.channel == "whatsapp").order_by(Delivery.id)))


def _posts(fake):
    return [r for r in fake.requests if r.method == "POST"]


def test_the_fan_out_sends_each_subscriber_their_languages_template(session, settings, channels, fake, world):
    assert isinstance(channels["whatsapp"], TwilioWhatsApp) and channels["whatsapp"].mode == "live"
    team, subs = world
    alert = _approved(session, team)
    ids = plan.plan_alert(session, alert_id=alert.id)["whatsapp"]
    session.commit()
    assert len(ids) == len(subs["palu"]) == 4
    fake.fail_next(1, status=429, code=20429, retry_after="5")
    _, retry = _send(session, settings, channels, ids)
    assert len(retry) == 1 and len(_posts(fake)) == 4
    _, again = _send(session, settings, channels, retry)
    assert again == [] and len(_posts(fake)) == 5
    _send(session, settings, channels, ids)  # the batch task redelivered: nothing reaches Twilio again
    assert len(_posts(fake)) == 5
    rows = _rows(session)
    assert all(r.state == "sent" and r.provider_id for r in rows)
    by_sid = {m["sid"]: m for m in fake.messages}
    data = alerts.to_alert_data(alert, public_base_url=PUBLIC)
    renderer = WhatsAppRenderer(SIDS)
    for row in rows:
        sub = session.get(Subscriber, row.subscriber_id)
        stored = by_sid[row.provider_id]
        assert stored["to"] == f"whatsapp:{sub.phone}" and stored["from"] == f"whatsapp:{FROM}"
        assert stored["body"] == renderer.marked_text(data, sub.language)  # exactly the preview
    # The one English subscriber, and only they, got the English template (the 429 above may have hit their
    # request, which is then posted twice: count people, not requests).
    english = {r.form["To"] for r in _posts(fake) if r.form["ContentSid"] == SIDS["banjir.en"]}
    assert english == {f"whatsapp:{p}" for p in session.scalars(sa.select(Subscriber.phone).where(
        Subscriber.id.in_(subs["palu"]), Subscriber.language == "en"))}
    assert len(english) == 1


def test_status_callbacks_move_whatsapp_rows_forward_and_forged_ones_change_nothing(
    session, engine, settings, channels, fake, world
):
    team, _ = world
    alert = _approved(session, team)
    ids = plan.plan_alert(session, alert_id=alert.id)["whatsapp"]
    session.commit()
    _send(session, settings, channels, ids)
    rows = _rows(session)
    with TestClient(create_app(settings)) as client:

        def post(sid, status, code=None, token=None):
            url, form = fake.status_callback(sid, status, error_code=code)
            parts = urlsplit(url)
            return client.post(
                f"{parts.path}?{parts.query}",
                data=form,
                headers={"X-Twilio-Signature": fake.sign(url, form, token=token)},
            )

        for status in ("sent", "delivered", "read"):
            assert post(rows[0].provider_id, status).status_code == 200
        assert post(rows[1].provider_id, "failed", 63016).status_code == 200
        assert post(rows[2].provider_id, "undelivered", 63024).status_code == 200
        assert post(rows[3].provider_id, "delivered", token="not-the-token").status_code == 403
        assert post(rows[0].provider_id, "sent").status_code == 200  # late and older: ignored
        r = client.post("/api/v1/auth/login", json={"username": "op.palu", "password": PASSWORD})
        headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
        counts = client.get(f"/api/v1/alerts/{alert.id}/deliveries", headers=headers).json()
    states = {r.id: r.state for r in _rows(session)}
    assert states[rows[0].id] == "delivered" and states[rows[1].id] == "failed"
    assert states[rows[2].id] == "undelivered" and states[rows[3].id] == "sent"
    whatsapp = next(c for c in counts if c["channel"] == "whatsapp")
    assert whatsapp["mode"] == "live" and whatsapp["by_state"]["delivered"] == 1


def test_rows_a_dead_worker_left_in_doubt_are_reconciled_not_sent_twice(session, settings, channels, fake, world):
    team, _ = world
    alert = _approved(session, team)
    ids = plan.plan_alert(session, alert_id=alert.id)["whatsapp"]
    session.commit()
    # A worker claims the batch and sends two of the four, then dies before recording anything.
    batch = claims.claim(session, delivery_ids=ids, lease_s=60, public_base_url=PUBLIC)
    session.commit()
    messages = channels["whatsapp"].render(batch.alert, [i.recipient for i in batch.items])
    first_sids = {m.reference: channels["whatsapp"].send(m) for m in messages[:2]}
    session.execute(sa.update(Delivery).where(Delivery.id.in_(ids)).values(lease_until=utcnow().replace(year=2000)))
    session.commit()
    _send(session, settings, channels, ids)
    rows = {str(r.id): r for r in _rows(session)}
    assert len(_posts(fake)) == 4  # two before the crash, the two it never sent: nothing twice
    assert all(r.state == "sent" for r in rows.values())
    assert all(rows[ref].provider_id == sid for ref, sid in first_sids.items())


def test_the_messaging_tier_is_a_shared_cap_on_people_per_24h(session, settings, channels, fake, world, redis_db):
    team, _ = world
    limiter = RateLimiter(redis_db)
    alert = _approved(session, team)
    ids = plan.plan_alert(session, alert_id=alert.id)["whatsapp"]
    session.commit()
    _send(session, settings, channels, ids, limiter=limiter)
    rows = _rows(session)
    assert [r.state for r in rows].count("sent") == 2  # the tier used here: 2 people per 24 h
    capped = [r for r in rows if r.state == "failed"]
    assert len(capped) == 2 and all("whatsapp:tier:" in r.error for r in capped)
    assert len(_posts(fake)) == 2
    assert limiter.recipients_in_window(channels["whatsapp"].recipient_cap) == 2
    # A second alert: the two people already in the window are messaged again, the others still are not.
    second = _approved(session, team)
    ids2 = plan.plan_alert(session, alert_id=second.id)["whatsapp"]
    session.commit()
    _send(session, settings, channels, ids2, limiter=limiter)
    states = [r.state for r in _rows(session) if r.alert_id == second.id]
    assert states.count("sent") == 2 and states.count("failed") == 2
    sent_subs = {r.subscriber_id for r in _rows(session) if r.state == "sent"}
    assert len(sent_subs) == 2


def test_the_composer_warns_before_approval_when_an_alert_would_pass_the_tier(db_url, fake, world, redis_db):
    settings = make_settings(db_url, fake, tier="250")
    payload = alert_payload("Exercise", channels=["whatsapp", "web"])
    with TestClient(create_app(settings.model_copy(update={"environment": "test"}))) as client:
        r = client.post("/api/v1/auth/login", json={"username": "op.palu", "password": PASSWORD})
        headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
        fine = client.post("/api/v1/alerts/preview", json=payload, headers=headers).json()
        assert fine["warnings"] == []
        assert fine["channels"]["whatsapp"][0]["template"] == "banjir.id"
        # 248 other people already messaged in the last 24 h: four more Palu subscribers pass the 250.
        RateLimiter(redis_db).admit(_cap(settings), [f"+62899{i:07d}" for i in range(248)])
        warned = client.post("/api/v1/alerts/preview", json=payload, headers=headers).json()
    [warning] = warned["warnings"]
    assert "250" in warning and "whatsapp" in warning and warning.startswith("Peringatan")


def _cap(settings):
    from channels.registry import recipient_caps

    return recipient_caps({"whatsapp": channel_config(settings, "whatsapp")})["whatsapp"]

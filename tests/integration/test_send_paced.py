"""Within one batch: the shared Redis token buckets pace live Twilio sends so that no one-second window holds
more than the configured rate, and a cancel committed mid-batch stops what has not been handed over yet."""

import pytest
import redis
import sqlalchemy as sa

from broadcast.alerts import service as alerts
from broadcast.alerts.schemas import AlertCreate
from broadcast.dispatch.claims import claim
from broadcast.dispatch.models import Delivery
from broadcast.dispatch.outcomes import record_results
from broadcast.dispatch.pacing import CHECK_EVERY, READ_EVERY, send_claimed
from broadcast.dispatch.plan import plan_alert
from broadcast.dispatch.ratelimit import RateLimiter
from broadcast.subscribers import service as subscribers
from channels.registry import build_channel
from channels.sms import TwilioConfig, TwilioSms
from tests.factories import alert_payload, make_team
from tests.fakes.twilio import FakeTwilio

pytestmark = pytest.mark.integration
BASE = "https://bpbd-palu.example.id"


@pytest.fixture
def fake():
    with FakeTwilio() as f:
        yield f


def live_sms(fake, **kw) -> TwilioSms:
    """The live Twilio channel pointed at `fake`; `kw` are TwilioConfig fields."""
    config = TwilioConfig(
        account_sid=fake.account_sid, auth_token=fake.auth_token, max_concurrency=8, api_base_url=fake.url, **kw
    )
    channel = build_channel("sms", mode="live", public_base_url=BASE, config=config)
    assert isinstance(channel, TwilioSms)
    return channel


def _sms(fake, rate):
    return live_sms(fake, messaging_service_sid="MG" + "a" * 32, rate_per_second=rate, messaging_service_rate=rate)


def _claimed(session, n):
    team = make_team(session)
    for i in range(n):
        subscribers.add_subscriber(session, phone=f"+62812770{i:05d}", admin_code="72.71.01.1004", channels=["sms"])
    payload = alert_payload("Actual")
    payload["channels"] = ["sms"]
    alert = alerts.create_alert(session, data=AlertCreate(**payload), author=team["operator"], sender="t@x")
    alerts.submit_alert(session, alert_id=alert.id, actor=team["operator"])
    alerts.approve_alert(session, alert_id=alert.id, approver=team["approver"], production=True)
    planned = plan_alert(session, alert_id=alert.id)
    batch = claim(session, delivery_ids=planned["sms"], lease_s=60, public_base_url=BASE)
    session.commit()
    return batch


def test_paced_sends_never_exceed_the_rate_in_any_second(session, fake, redis_url):
    sms = _sms(fake, rate=20)
    batch = _claimed(session, 50)
    limiter = RateLimiter(redis.Redis.from_url(redis_url))
    try:
        sent = send_claimed(batch, channels={"sms": sms}, limiter=limiter, max_wait_s=60)
    finally:
        sms.close()
    assert [s.result.outcome.value for s in sent] == ["sent"] * 50
    assert fake.stats()["posts"] == 50
    assert fake.stats()["max_in_any_second"] <= 20


def test_a_cancel_mid_batch_stops_the_rest(session, fake, redis_url):
    sms = _sms(fake, rate=1_000_000)
    batch = _claimed(session, 2 * CHECK_EVERY + 10)
    checks = []

    def still_live():
        checks.append(1)
        return False  # cancelled as soon as the first step went out

    try:
        sent = send_claimed(batch, channels={"sms": sms}, limiter=None, still_live=still_live)
    finally:
        sms.close()
    record_results(session, sent=sent)
    session.commit()
    assert len(checks) == 1
    assert fake.stats()["posts"] == READ_EVERY
    states = dict(
        session.execute(sa.select(Delivery.state, sa.func.count()).group_by(Delivery.state)).all()  # type: ignore[arg-type]
    )
    assert states == {"sent": READ_EVERY, "skipped": 2 * CHECK_EVERY + 10 - READ_EVERY}

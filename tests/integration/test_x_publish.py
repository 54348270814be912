"""Publishing to X through the fan-out with real tweepy against the fake X API: map upload, thread,
update as a reply to the original post, and a 429 that delays the post instead of losing it."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from broadcast.alerts import service as alerts
from broadcast.alerts.models import MsgType
from broadcast.alerts.schemas import AlertCreate
from broadcast.dispatch import planning
from broadcast.dispatch.claims import claim
from broadcast.dispatch.models import Delivery, OutboxMessage
from broadcast.dispatch.outcomes import record_results, retry_after_hint
from broadcast.dispatch.pacing import send_claimed
from broadcast.dispatch.plan import plan_alert
from channels.registry import build_channels
from channels.social import XAccount, XConfig, XPost
from tests.factories import alert_payload, make_team
from tests.fakes.x_api import FakeX

pytestmark = pytest.mark.integration
BASE = "https://peringatan.example.id"
PALU = XAccount("72.71", "bpbdpalu", "4271", "tok-palu", "sec-palu")


@pytest.fixture
def fake():
    with FakeX() as f:
        yield f


@pytest.fixture
def channels(fake):
    x = XPost.from_config(XConfig("ck", "cs", (PALU,)))
    for connection in x.connections:
        fake.attach(connection.client, connection.api, timeout_s=5)
    others = build_channels(["sms", "web"], modes={}, public_base_url=BASE)
    return {**others, "social": x}


def publish(session, team, *, author="operator", approver="approver", alert=None):
    if alert is None:
        payload = alert_payload("Exercise")
        payload["infos"][0]["instruction"] = " ".join(["Segera mengungsi ke tempat tinggi."] * 12)
        alert = alerts.create_alert(session, data=AlertCreate(**payload), author=team[author], sender="bpbd@palu")
    alerts.submit_alert(session, alert_id=alert.id, actor=team[author])
    alerts.approve_alert(session, alert_id=alert.id, approver=team[approver], production=False)
    session.commit()
    planned = plan_alert(session, alert_id=alert.id)
    session.commit()
    return alert, planned


def send(session, channels, ids):
    batch = claim(session, delivery_ids=ids, lease_s=60, public_base_url=BASE)
    session.commit()
    sent = send_claimed(batch, channels=channels)
    retry = record_results(session, sent=sent)
    session.commit()
    return sent, retry


def test_publish_thread_with_map_then_update_as_a_reply(session, channels, fake):
    team = make_team(session)
    session.commit()
    original, planned = publish(session, team)
    send(session, channels, planned["social"])
    assert len(fake.media) == 1 and fake.alt_texts  # the map, described
    posts = [p.json() for p in fake.posts()]
    assert len(posts) >= 3  # long instruction: a thread, English replies last
    assert posts[0]["media"]["media_ids"] and posts[0]["text"].startswith("[LATIHAN]")
    assert all(p["text"].startswith(("[LATIHAN]", "[EXERCISE]")) for p in posts)
    assert posts[-1]["text"].startswith("[EXERCISE]")
    first_id = session.scalar(sa.select(Delivery.provider_id).where(Delivery.alert_id == original.id,
                                                                     Delivery.channel == "social"))
    assert first_id in fake.tweets
    outbox_threads = session.scalars(sa.select(OutboxMessage.text)).all()
    assert outbox_threads == []  # live channel: nothing went to the outbox

    update = alerts.create_follow_up(session, original_id=original.id, actor=team["approver"], msg_type=MsgType.UPDATE)
    session.commit()
    _, planned = publish(session, team, author="approver", approver="admin", alert=update)
    before = len(fake.posts())
    send(session, channels, planned["social"])
    reply = fake.posts()[before].json()
    assert reply["reply"] == {"in_reply_to_tweet_id": first_id}
    assert "PEMBARUAN" in reply["text"]


def test_a_429_with_reset_delays_the_post_instead_of_losing_it(session, channels, fake):
    team = make_team(session)
    session.commit()
    _, planned = publish(session, team)
    fake.rate_limit_next("POST", "/2/tweets", reset=int(time.time()) + 90)
    sent, retry = send(session, channels, planned["social"])
    assert retry == planned["social"]
    hint = retry_after_hint(sent, retry)
    assert hint is not None and 80 <= hint <= 91
    assert planning.retry_countdown(0, hint) == hint  # the task waits for X's reset, not a short backoff
    assert session.scalar(sa.select(Delivery.state).where(Delivery.id == planned["social"][0])) == "pending"
    send(session, channels, retry)
    assert session.scalar(sa.select(Delivery.state).where(Delivery.id == planned["social"][0])) == "sent"
    texts = [p.json()["text"] for p in fake.posts()]
    assert len([t for t in texts if t.startswith("[LATIHAN] Banjir")]) == 1  # posted once in the end


def test_caps_are_reported_before_approval(session, db_url, channels, fake, redis_url):
    from fastapi.testclient import TestClient

    from broadcast.api.app import create_app
    from broadcast.settings import Settings
    from tests.factories import PASSWORD

    team = make_team(session)
    session.commit()
    _, planned = publish(session, team)
    send(session, channels, planned["social"])
    draft = alerts.create_alert(session, data=AlertCreate(**alert_payload("Exercise")), author=team["operator"],
                                sender="s")
    session.commit()
    # Sign-in needs its throttle's store (Redis): without it, it is refused (issue 22).
    with TestClient(create_app(Settings(environment="test", database_url=db_url, secret_key="k" * 20,
                                        broker_url=redis_url, public_base_url=BASE))) as client:
        token = client.post("/api/v1/auth/login", json={"username": "op.palu", "password": PASSWORD}).json()
        caps = client.get(f"/api/v1/alerts/{draft.id}/x-caps",
                          headers={"Authorization": f"Bearer {token['access_token']}"}).json()
    assert caps["posts_last_24h"] == len(fake.posts()) and caps["planned_posts"] >= 2
    assert caps["exceeds"] is False and caps["message"] == ""
    from channels.social import check_posting_caps

    near_limit = check_posting_caps(caps["planned_posts"], account_posts_24h=99, app_posts_24h=99)
    assert near_limit.exceeds and "100" in near_limit.message_en


def test_account_caps_hold_posts_in_redis_buckets_and_a_429_blocks_every_worker(session, fake, redis_url):
    import redis as redis_lib

    from broadcast.dispatch.ratelimit import RateLimiter

    client = redis_lib.Redis.from_url(redis_url)  # the test's own database, emptied before and after
    limiter = RateLimiter(client, prefix="xtest:")

    def empty_buckets() -> None:
        for key in client.scan_iter("xtest:*"):
            client.delete(key)

    small = XAccount("72.71", "bpbdpalu", "4271", "tok-palu", "sec-palu", posts_per_24h=4)
    x = XPost.from_config(XConfig("ck", "cs", (small,)))
    for connection in x.connections:
        fake.attach(connection.client, connection.api, timeout_s=5)
    channels = {**build_channels(["sms", "web"], modes={}, public_base_url=BASE), "social": x}
    team = make_team(session)
    session.commit()

    def send_limited(ids):
        batch = claim(session, delivery_ids=ids, lease_s=60, public_base_url=BASE)
        session.commit()
        sent = send_claimed(batch, channels=channels, limiter=limiter)
        retry = record_results(session, sent=sent)
        session.commit()
        return sent, retry

    _, first = publish(session, team)
    send_limited(first["social"])
    used = len(fake.posts())
    assert 2 <= used <= 4  # a thread within the account's 4 posts a day
    _, second = publish(session, team)
    sent, retry = send_limited(second["social"])
    assert retry == second["social"] and len(fake.posts()) == used  # held back, not sent, not lost
    assert sent[0].result.retry_after > 3600  # the cap refills over the day
    attempts = session.scalar(sa.select(Delivery.attempts).where(Delivery.id == second["social"][0]))
    assert attempts == 0  # waiting for the cap used up no retry
    empty_buckets()
    fake.rate_limit_next("POST", "/2/tweets", reset=int(time.time()) + 120)
    sent, retry = send_limited(second["social"])
    assert retry == second["social"] and sent[0].result.retry_after >= 100
    # X said wait: the buckets are blocked for every worker, so nothing is even attempted now.
    requests_before = len(fake.requests)
    sent, retry = send_limited(second["social"])
    assert retry == second["social"] and len(fake.requests) == requests_before
    empty_buckets()

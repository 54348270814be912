"""Twilio's per-sender buckets on real Redis: each long code sends at most once in any second while the numbers of
a pool send side by side, a short code stays under its 100/s, and a 429 blocks the account, not the number."""

import time

import pytest
import redis

from broadcast.dispatch import service
from broadcast.dispatch.ratelimit import RateLimiter
from channels.base import OutboundMessage
from channels.sms import TwilioSms
from tests.fakes.twilio import FakeTwilio
from tests.integration.test_send_paced import _claimed
from tests.integration.test_send_paced import live_sms as _sms

pytestmark = pytest.mark.integration
LONG = ("+6281100000001", "+6281100000002")
SHORT = "76543"


@pytest.fixture
def fake():
    with FakeTwilio() as f:
        yield f


def _busiest_second(times: list[float]) -> int:
    times, busiest, lo = sorted(times), 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= 1.0:
            lo += 1
        busiest = max(busiest, hi - lo + 1)
    return busiest


def _posts_by_sender(fake) -> dict[str, list[float]]:
    by_sender: dict[str, list[float]] = {}
    for r in fake.requests:
        if r.method == "POST":
            by_sender.setdefault(r.form.get("From", ""), []).append(r.at)
    return by_sender


def _sender_of(sms: TwilioSms, item: service.ClaimedItem) -> str | None:
    return sms.sender_for(OutboundMessage(item.recipient.address, "", item.recipient.key))


def test_a_pool_of_long_codes_sends_each_number_once_a_second_side_by_side(session, fake, redis_url):
    sms = _sms(fake, sender_numbers=LONG)
    batch = _claimed(session, 8)
    # The first number's messages first: sent one step after another, the second number would wait for them all.
    batch.items.sort(key=lambda i: _sender_of(sms, i) != LONG[0])
    counts = [sum(_sender_of(sms, i) == n for i in batch.items) for n in LONG]
    assert min(counts) >= 1
    limiter = RateLimiter(redis.Redis.from_url(redis_url))
    start = time.time()
    try:
        sent = service.send_claimed(batch, channels={"sms": sms}, limiter=limiter, max_wait_s=30)
    finally:
        sms.close()
    assert [s.result.outcome.value for s in sent] == ["sent"] * 8
    by_sender = _posts_by_sender(fake)
    assert set(by_sender) == set(LONG)
    assert all(_busiest_second(times) <= 1 for times in by_sender.values()), by_sender
    # The second number starts at once instead of after the first number's queue (1.25 s a message).
    assert min(by_sender[LONG[1]]) - start < 1.0


def test_a_short_code_stays_under_its_100_a_second(session, fake, redis_url):
    sms = _sms(fake, sender_numbers=(SHORT,))
    batch = _claimed(session, 250)
    limiter = RateLimiter(redis.Redis.from_url(redis_url))
    try:
        sent = service.send_claimed(batch, channels={"sms": sms}, limiter=limiter, max_wait_s=30)
    finally:
        sms.close()
    assert [s.result.outcome.value for s in sent] == ["sent"] * 250
    assert fake.stats()["posts"] == 250
    assert fake.stats()["max_in_any_second"] <= 100


def test_what_misses_the_deadline_comes_back_to_retry_with_the_wait(session, fake, redis_url):
    sms = _sms(fake, sender_numbers=LONG[:1])
    batch = _claimed(session, 4)
    limiter = RateLimiter(redis.Redis.from_url(redis_url))
    try:
        sent = service.send_claimed(batch, channels={"sms": sms}, limiter=limiter, max_wait_s=2)
    finally:
        sms.close()
    outcomes = [s.result.outcome.value for s in sent]
    assert outcomes.count("sent") == 2 and fake.stats()["posts"] == 2  # at 0 s and 1.25 s; 2.5 s is too late
    held = [s for s in sent if s.held]
    assert len(held) == 2 and all(s.result.retry_after and s.result.retry_after > 0 for s in held)


def test_a_429_blocks_the_account_bucket_not_the_number(session, fake, redis_url):
    sms = _sms(fake, sender_numbers=LONG[:1])
    batch = _claimed(session, 1)
    fake.fail_next(1, status=429, code=20429, retry_after="30")
    client = redis.Redis.from_url(redis_url)
    try:
        sent = service.send_claimed(batch, channels={"sms": sms}, limiter=RateLimiter(client), max_wait_s=5)
    finally:
        sms.close()
    assert [s.result.outcome.value for s in sent] == ["retry"]
    account = float(client.hget(f"rl:sms:account:{fake.account_sid}", "blocked_until"))
    sec, usec = client.time()
    assert 25_000 < account - (sec * 1000 + usec // 1000) <= 30_000
    assert client.hget(f"rl:sms:sender:{LONG[0]}", "blocked_until") is None

"""Twilio's per-sender buckets on real Redis: each long code sends at most once in any second while the numbers of
a pool send side by side, a short code stays under its 100/s, and a 429 blocks the account, not the number."""

import time

import pytest
import redis

from broadcast.dispatch.claims import ClaimedItem
from broadcast.dispatch.pacing import send_claimed
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


def _posts_by_sender(fake) -> dict[str, list[float]]:
    by_sender: dict[str, list[float]] = {}
    for r in fake.requests:
        if r.method == "POST":
            by_sender.setdefault(r.form.get("From", ""), []).append(r.at)
    return by_sender


def _sender_of(sms: TwilioSms, item: ClaimedItem) -> str | None:
    return sms.sender_for(OutboundMessage(item.recipient.address, "", item.recipient.key))


class GrantLog(RateLimiter):
    """The real limiter (the same Lua script on the same Redis) on the test's clock: every call passes its own
    `now`, and each grant is logged as (now, bucket keys, tokens). What the buckets allowed is then checked on the
    times the script decided on, not on when requests happened to reach the fake (that adds the machine's
    scheduling delays, which no limiter controls)."""

    def __init__(self, client: redis.Redis) -> None:
        super().__init__(client)
        self.grants: list[tuple[int, tuple[str, ...], int]] = []

    def try_acquire(self, buckets, n=1, *, now_ms=None):  # type: ignore[no-untyped-def]
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        wait = super().try_acquire(buckets, n, now_ms=now_ms)
        if wait == 0.0:
            self.grants.append((now_ms, tuple(b.key for b in buckets), n))
        return wait

    def times(self, key: str) -> list[int]:
        """When `key` gave tokens, one entry per token, in ms."""
        return [at for at, keys, n in self.grants if key in keys for _ in range(n)]


def test_a_pool_of_long_codes_sends_each_number_once_a_second_side_by_side(session, fake, redis_url):
    sms = _sms(fake, sender_numbers=LONG)
    batch = _claimed(session, 8)
    # The first number's messages first: sent one step after another, the second number would wait for them all.
    batch.items.sort(key=lambda i: _sender_of(sms, i) != LONG[0])
    counts = [sum(_sender_of(sms, i) == n for i in batch.items) for n in LONG]
    assert min(counts) >= 1
    limiter = GrantLog(redis.Redis.from_url(redis_url))
    try:
        sent = send_claimed(batch, channels={"sms": sms}, limiter=limiter, max_wait_s=30)
    finally:
        sms.close()
    assert [s.result.outcome.value for s in sent] == ["sent"] * 8
    by_sender = _posts_by_sender(fake)
    assert set(by_sender) == set(LONG)
    grants = {n: limiter.times(f"sms:sender:{n}") for n in LONG}
    for number in LONG:
        # One token per request, and never two tokens of a 1/s number within a second: the bucket refills at
        # 0.8/s, so its grants are at least 1.25 s apart on the clock the script was given.
        assert len(grants[number]) == len(by_sender[number]) == counts[LONG.index(number)]
        assert all(b - a >= 1250 for a, b in zip(grants[number], grants[number][1:], strict=False)), grants
        # Each request left after its token and before the number's next token (one helping at a time), so
        # the requests reach the provider in the bucket's rhythm, shifted only by the machine's own delays.
        arrivals = sorted(by_sender[number])
        for k, at in enumerate(arrivals):
            assert at * 1000 >= grants[number][k] - 5, (number, k, at, grants[number])
            if k + 1 < len(arrivals):
                assert at * 1000 <= grants[number][k + 1] + 5, (number, k, at, grants[number])
    # The second number starts at once, side by side, instead of after the first number's queue.
    assert grants[LONG[1]][0] < grants[LONG[0]][1]


def test_a_short_code_stays_under_its_100_a_second(session, fake, redis_url):
    sms = _sms(fake, sender_numbers=(SHORT,))
    batch = _claimed(session, 250)
    limiter = RateLimiter(redis.Redis.from_url(redis_url))
    try:
        sent = send_claimed(batch, channels={"sms": sms}, limiter=limiter, max_wait_s=30)
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
        sent = send_claimed(batch, channels={"sms": sms}, limiter=limiter, max_wait_s=2)
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
        sent = send_claimed(batch, channels={"sms": sms}, limiter=RateLimiter(client), max_wait_s=5)
    finally:
        sms.close()
    assert [s.result.outcome.value for s in sent] == ["retry"]
    account = float(client.hget(f"rl:sms:account:{fake.account_sid}", "blocked_until"))
    sec, usec = client.time()
    assert 25_000 < account - (sec * 1000 + usec // 1000) <= 30_000
    assert client.hget(f"rl:sms:sender:{LONG[0]}", "blocked_until") is None

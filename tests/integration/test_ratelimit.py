"""Redis token buckets: exact refill arithmetic (clock passed in), all-or-nothing takes, Retry-After blocks."""

import pytest
import redis

from broadcast.dispatch.ratelimit import Bucket, RateLimiter

pytestmark = pytest.mark.integration


@pytest.fixture
def limiter(redis_url):
    yield RateLimiter(redis.Redis.from_url(redis_url), prefix="test:")


def test_burst_then_refill_at_the_rate(limiter):
    bucket = Bucket("twilio:+62811", rate=1.0, burst=3)
    t0 = 1_000_000
    assert [limiter.try_acquire([bucket], now_ms=t0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.try_acquire([bucket], now_ms=t0) == 1.0  # empty: one token per second
    assert limiter.try_acquire([bucket], now_ms=t0 + 500) == 0.5
    assert limiter.try_acquire([bucket], now_ms=t0 + 1000) == 0.0
    assert limiter.try_acquire([bucket], now_ms=t0 + 1000) == 1.0


def test_never_more_than_rate_per_second_after_the_burst(limiter):
    bucket = Bucket("short-code", rate=100, burst=100)
    t0 = 5_000_000
    granted_per_second = {}
    for ms in range(0, 5000, 2):  # callers hammering every 2 ms for 5 s
        if limiter.try_acquire([bucket], now_ms=t0 + ms) == 0.0:
            granted_per_second[ms // 1000] = granted_per_second.get(ms // 1000, 0) + 1
    assert granted_per_second[0] <= 200  # the burst plus one second of refill
    assert all(n <= 101 for s, n in granted_per_second.items() if s > 0)
    assert sum(granted_per_second.values()) <= 100 + 100 * 5


def test_all_or_nothing_across_buckets(limiter):
    account = Bucket("account", rate=10, burst=10)
    sender = Bucket("sender:+62812", rate=1, burst=1)
    t0 = 9_000_000
    assert limiter.try_acquire([account, sender], now_ms=t0) == 0.0
    assert limiter.try_acquire([account, sender], now_ms=t0) == 1.0  # the sender is empty
    # The refused attempt took nothing from the account bucket: nine tokens are still there.
    assert [limiter.try_acquire([account], now_ms=t0) for _ in range(9)] == [0.0] * 9
    assert limiter.try_acquire([account], now_ms=t0) > 0


def test_retry_after_blocks_everyone(limiter):
    bucket = Bucket("x:@bpbdpalu", rate=100 / 86400, burst=100)
    t0 = 20_000_000
    assert limiter.try_acquire([bucket], now_ms=t0) == 0.0
    limiter.block_for(bucket, 30, now_ms=t0)
    assert limiter.try_acquire([bucket], now_ms=t0 + 1000) == 29.0
    assert limiter.try_acquire([bucket], now_ms=t0 + 30_000) == 0.0


def test_acquire_gives_up_instead_of_blocking_a_worker(limiter):
    bucket = Bucket("slow", rate=0.01, burst=1)
    assert limiter.acquire([bucket], max_wait_s=1) is True
    assert limiter.acquire([bucket], max_wait_s=1) is False  # 100 s away: re-schedule instead


def test_bad_buckets_are_refused(limiter):
    with pytest.raises(ValueError):
        Bucket("zero", rate=0, burst=1)
    with pytest.raises(ValueError):
        limiter.try_acquire([Bucket("small", rate=1, burst=2)], n=3)

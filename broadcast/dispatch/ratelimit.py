"""Token buckets in Redis: one atomic Lua script takes tokens from several buckets at once (provider
account and sender number, say) or from none, and says how long to wait otherwise.

A provider's Retry-After blocks a bucket until a given time; every caller then waits it out.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass

import redis

from channels.base import RecipientCap

# KEYS: the buckets. ARGV[1]: tokens wanted; ARGV[2]: now in ms or "" for Redis' own clock;
# then per bucket: rate (tokens per second), burst (capacity).
_ACQUIRE = """
local n = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local wait = 0
local tokens = {}
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[1 + 2 * i])
  local burst = tonumber(ARGV[2 + 2 * i])
  local state = redis.call('HMGET', key, 'tokens', 'ts', 'blocked_until')
  local have = tonumber(state[1]) or burst
  local ts = tonumber(state[2]) or now
  local blocked = tonumber(state[3]) or 0
  if now > ts then have = math.min(burst, have + (now - ts) * rate / 1000) end
  tokens[i] = have
  if blocked > now and blocked - now > wait then wait = blocked - now end
  if have < n then
    local need = math.ceil((n - have) * 1000 / rate)
    if need > wait then wait = need end
  end
end
if wait > 0 then return {0, wait} end
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[1 + 2 * i])
  local burst = tonumber(ARGV[2 + 2 * i])
  redis.call('HSET', key, 'tokens', tostring(tokens[i] - n), 'ts', now)
  redis.call('PEXPIRE', key, math.ceil(burst * 1000 / rate) + 60000)
end
return {1, 0}
"""

_BLOCK = """
local until_ms = tonumber(ARGV[1])
local current = tonumber(redis.call('HGET', KEYS[1], 'blocked_until')) or 0
if until_ms > current then
  redis.call('HSET', KEYS[1], 'blocked_until', until_ms)
  local ttl = redis.call('PTTL', KEYS[1])
  local now = tonumber(ARGV[2])
  if ttl < until_ms - now then redis.call('PEXPIRE', KEYS[1], until_ms - now + 60000) end
end
return 1
"""

# KEYS[1]: the set of recent recipients (member → last time). ARGV: now in ms or "", window in ms, limit, members.
# Admits, in order, each member already in the window or, while the window holds fewer than `limit`, a new one.
_ADMIT = """
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local out = {}
for i = 4, #ARGV do
  local known = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if known or count < limit then
    if not known then count = count + 1 end
    redis.call('ZADD', KEYS[1], now, ARGV[i])
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
redis.call('PEXPIRE', KEYS[1], window + 60000)
return out
"""


@dataclass(frozen=True, slots=True)
class Bucket:
    """A named bucket refilling at `rate` tokens per second up to `burst` tokens."""

    key: str
    rate: float
    burst: float

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst <= 0:
            raise ValueError(f"bucket {self.key}: rate and burst must be positive")


class RateLimiter:
    """Takes tokens atomically from Redis buckets shared by every worker."""

    def __init__(self, client: redis.Redis, *, prefix: str = "rl:") -> None:
        self._client = client
        self._prefix = prefix
        self._acquire = client.register_script(_ACQUIRE)
        self._block = client.register_script(_BLOCK)
        self._admit = client.register_script(_ADMIT)

    def ping(self) -> None:
        """Open the connection to Redis (and fail if it is down)."""
        self._client.ping()

    def try_acquire(self, buckets: Sequence[Bucket], n: int = 1, *, now_ms: int | None = None) -> float:
        """Take `n` tokens from every bucket, or from none; 0.0 when taken, else the seconds to wait."""
        if not buckets:
            return 0.0
        if any(n > b.burst for b in buckets):
            raise ValueError("asking for more tokens than a bucket can ever hold")
        args: list[str | float | int] = [n, "" if now_ms is None else now_ms]
        for b in buckets:
            args += [b.rate, b.burst]
        granted, wait_ms = self._acquire(keys=[self._prefix + b.key for b in buckets], args=args)
        return 0.0 if granted else int(wait_ms) / 1000

    def acquire(self, buckets: Sequence[Bucket], n: int = 1, *, max_wait_s: float = 30.0) -> bool:
        """Wait (sleeping) until the tokens are taken; False if that would take longer than `max_wait_s`,
        so a task can re-schedule itself instead of holding a worker."""
        deadline = time.monotonic() + max_wait_s
        while True:
            wait = self.try_acquire(buckets, n)
            if wait == 0.0:
                return True
            if time.monotonic() + wait > deadline:
                return False
            time.sleep(wait)

    def block_for(self, bucket: Bucket, seconds: float, *, now_ms: int | None = None) -> None:
        """Honour a provider's Retry-After: nobody takes from this bucket for `seconds`."""
        if now_ms is None:
            sec, usec = self._client.time()
            now_ms = int(sec) * 1000 + int(usec) // 1000
        self._block(keys=[self._prefix + bucket.key], args=[now_ms + int(seconds * 1000), now_ms])

    def admit(self, cap: RecipientCap, recipients: Sequence[str], *, now_ms: int | None = None) -> list[bool]:
        """Whether each recipient may be messaged under `cap` (distinct people per window), in order: someone
        already messaged within the window always, a new person while the window has room (and is then counted).
        People are kept as hashes, never as numbers."""
        if not recipients:
            return []
        args: list[str | float | int] = ["" if now_ms is None else now_ms, int(cap.window_s * 1000), cap.limit]
        args += [_member(r) for r in recipients]
        return [bool(x) for x in self._admit(keys=[self._prefix + cap.key], args=args)]

    def recipients_in_window(self, cap: RecipientCap) -> int:
        """How many distinct people `cap` counts in its window right now."""
        sec, usec = self._client.time()
        now_ms = int(sec) * 1000 + int(usec) // 1000
        found = self._client.zcount(self._prefix + cap.key, now_ms - int(cap.window_s * 1000), "+inf")
        return int(found)


def _member(recipient: str) -> str:
    return hashlib.sha256(recipient.encode()).hexdigest()[:24]

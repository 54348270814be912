"""The one way the service builds a Redis client: one client (and connection pool) per URL and timeout per process.

Limits, live events, the enrichment kick, readiness, `broadcast doctor`, the fan-out's token buckets and the
embedded Redis's start-up ping all call `redis_client`. redis-py's pool notices a fork and reconnects in the child,
so a client made before Celery forks its pool processes stays safe to use after.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import redis

# Short by default: every caller but the token buckets has a fallback or a finding to report when Redis is slow.
DEFAULT_TIMEOUT_S = 1.0


@lru_cache(maxsize=32)
def redis_client(url: str, *, timeout_s: float | None = DEFAULT_TIMEOUT_S) -> redis.Redis:
    """The process's client for `url` (`redis://…` or `unix://…`); `timeout_s` bounds connecting and every
    command, None waits as long as it takes."""
    import redis  # 150 ms to import: only processes that talk to Redis pay it

    return redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)

"""What a worker process holds for its tasks, whatever their domain: the enabled channels, the shared token buckets,
the database engine, start-up preloading and warm-up, and the shape of a task that sends pending rows one by one.
Task modules import this, never each other (`broadcast.events` carries work across domains)."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from celery import Task
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from broadcast.db import get_engine, session_scope
from broadcast.dispatch.ratelimit import RateLimiter
from broadcast.dispatch.wiring import build_active_channels
from broadcast.redisclient import redis_client
from broadcast.settings import get_settings
from channels.base import Channel

# A pending row a channel could not take yet is tried again after 15 s, 30 s, ... up to 10 minutes.
RETRY_BASE_S = 15
RETRY_MAX_S = 600


@lru_cache(maxsize=1)
def active_channels() -> dict[str, Channel]:
    """The enabled channels of this process: live Twilio/X only in production with credentials, else outbox."""
    return build_active_channels(get_settings())


@lru_cache(maxsize=1)
def rate_limiter() -> RateLimiter:
    """The token buckets every worker of this deployment shares (in the broker's Redis)."""
    return RateLimiter(redis_client(get_settings().resolved_redis_url, timeout_s=None))


def engine() -> Engine:
    """This process's engine for the configured database."""
    return get_engine(get_settings().resolved_database_url)


def preload() -> None:
    """Load the boundaries targeting reads (called once in the worker's main process, before the pool forks,
    so every pool process shares them instead of loading them during an alert's first batch)."""
    from geo import boundaries

    for level in boundaries.LEVELS:
        boundaries.load_level(level)
    import numpy.ma  # noqa: F401 - numpy imports it lazily during an alert's first match (~40 ms)


def warm_up() -> None:
    """Connect this process to the database, Redis and the providers' clients (once per pool process at start)."""
    eng = engine()
    eng.dispose(close=False)  # connections inherited from the parent process are not ours to use
    with eng.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
    rate_limiter().ping()
    for channel in active_channels().values():
        prepare = getattr(channel, "prepare", None)  # optional: adapters with connections to open
        if callable(prepare):
            prepare()


def send_each(task: Task[Any, Any], ids: list[int], send: Callable[[Session, int], bool]) -> None:
    """Run `send(session, id)` for each id in its own transaction; `send` answers True when the row is still
    pending (the channel could not take it yet). Those ids are retried by `task` with a growing delay; the beat
    sweep picks up whatever is left after the last retry."""
    eng = engine()
    left = []
    for row_id in ids:
        with session_scope(eng) as session:
            if send(session, row_id):
                left.append(row_id)
    if left:
        raise task.retry(args=(left,), countdown=min(RETRY_MAX_S, RETRY_BASE_S * 2**task.request.retries))


def enqueue_pending(task: Task[Any, Any], pending: Callable[[Session], list[int]]) -> None:
    """Queue one `task` run for every row `pending` finds (a sweep: after a worker died or a retry ran out)."""
    with session_scope(engine()) as session:
        ids = pending(session)
    if ids:
        task.delay(ids)

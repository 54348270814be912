"""Celery tasks of the fan-out. Arguments are ids only; every task is safe to run twice."""

from __future__ import annotations

import logging
from functools import lru_cache

import redis
from celery import Task

from broadcast.db import get_engine, session_scope
from broadcast.dispatch import planning, service
from broadcast.dispatch.ratelimit import RateLimiter
from broadcast.dispatch.wiring import build_active_channels
from broadcast.settings import get_settings
from broadcast.worker import celery
from channels.base import Channel

log = logging.getLogger(__name__)
LEASE_S = 300


@lru_cache(maxsize=1)
def active_channels() -> dict[str, Channel]:
    """The enabled channels of this process: live Twilio/X only in production with credentials, else outbox."""
    return build_active_channels(get_settings())


@lru_cache(maxsize=1)
def rate_limiter() -> RateLimiter:
    """The token buckets every worker of this deployment shares (in the broker's Redis)."""
    return RateLimiter(redis.Redis.from_url(get_settings().resolved_redis_url))


def _engine():  # type: ignore[no-untyped-def]
    return get_engine(get_settings().resolved_database_url)


@celery.task(name="dispatch.fanout_alert", bind=True, acks_late=True, max_retries=10)
def fanout_alert(self: Task, alert_id: int) -> None:
    """Plan an approved alert's deliveries and enqueue their batches. Retries on database errors."""
    try:
        with session_scope(_engine()) as session:
            planned = service.plan_alert(session, alert_id=alert_id)
            queue = service.queue_of(session, alert_id=alert_id)
    except Exception as exc:
        log.exception("planning alert %s failed", alert_id)
        raise self.retry(exc=exc, countdown=planning.backoff(self.request.retries)) from exc
    from broadcast.partners.tasks import fan_out as partners_fan_out

    partners_fan_out.delay(alert_id)  # partners learn of the publish as soon as it is planned
    channels = active_channels()
    for name, ids in planned.items():
        size = channels[name].limits.max_batch if name in channels else planning.DEFAULT_BATCH
        for chunk in planning.batches(ids, min(size, planning.DEFAULT_BATCH)):
            send_batch.apply_async(args=[chunk], queue=queue)


@celery.task(name="dispatch.send_batch", bind=True, acks_late=True, max_retries=planning.MAX_ATTEMPTS)
def send_batch(self: Task, delivery_ids: list[int]) -> None:
    """Send this batch's pending deliveries once; retry only transient failures, with backoff."""
    settings = get_settings()
    engine = _engine()
    with session_scope(engine) as session:
        claimed = service.claim(
            session, delivery_ids=delivery_ids, lease_s=LEASE_S, public_base_url=settings.public_base_url
        )
    if not claimed.items:
        return
    sent = service.send_claimed(claimed, channels=active_channels(), limiter=rate_limiter())
    with session_scope(engine) as session:
        retry_ids = service.record_results(session, sent=sent)
    if retry_ids:
        countdown = planning.retry_countdown(self.request.retries, service.retry_after_hint(sent, retry_ids))
        # Retries wait in the routine queue: first attempts of a cancel or a tsunami warning go ahead of them.
        raise self.retry(args=[retry_ids], countdown=countdown, queue=planning.ROUTINE_QUEUE)


@celery.task(name="dispatch.sweep", acks_late=True)
def sweep() -> None:
    """Re-enqueue work left behind by lost messages or dead workers (runs on beat)."""
    with session_scope(_engine()) as session:
        plan = service.sweep(session)
    for alert_id in plan.fanout_alert_ids:
        fanout_alert.delay(alert_id)
    for chunk in plan.batches:
        send_batch.delay(chunk)
    if plan.fanout_alert_ids or plan.batches or plan.skipped:
        log.info(
            "sweep: %d alerts re-planned, %d batches re-enqueued, %d skipped",
            len(plan.fanout_alert_ids),
            len(plan.batches),
            plan.skipped,
        )

"""Celery tasks: enrich stored reports (geocode, classify, dedupe, cluster) and bring reports in from X."""

from __future__ import annotations

import logging
from typing import Any

import redis
from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

from broadcast.db import get_engine, session_scope
from broadcast.dispatch.wiring import channel_config
from broadcast.redisclient import redis_client
from broadcast.reports import enrichment, intake
from broadcast.settings import get_settings
from broadcast.worker import celery
from channels.base import ChannelError
from channels.social import XConfig, XConnection

log = logging.getLogger(__name__)

BATCH = 200
# At most one enrichment run is queued per window, however many reports arrive in it.
KICK_KEY = "reports:enrich-kick"
KICK_WINDOW_MS = 200
MAX_ROUNDS = 50
# One enrichment run may take this long (soft: the report at hand is marked failed with the reason and the run
# hands over to a fresh one); the hard limit ends the pool process if the soft one is ignored.
SOFT_TIME_LIMIT_S = 120
TIME_LIMIT_S = 150


def kick_enrichment() -> None:
    """Make sure an enrichment run starts soon (call after committing new reports). Cheap: one Redis SET NX per
    call, one task per window; if Redis is down, the beat sweep finds the reports instead."""
    settings = get_settings()
    try:
        if redis_client(settings.resolved_redis_url, timeout_s=2).set(KICK_KEY, "1", nx=True, px=KICK_WINDOW_MS):
            enrich_pending.apply_async(countdown=KICK_WINDOW_MS / 1000)
    except (redis.RedisError, OSError) as exc:
        log.warning("enrichment not kicked (the sweep will find the reports): %s", exc)


def _backoff(retries: int) -> int:
    delay: int = 2 ** (retries + 1)
    return min(delay, 60)


@celery.task(
    name="reports.enrich_pending",
    bind=True,
    acks_late=True,
    max_retries=8,
    soft_time_limit=SOFT_TIME_LIMIT_S,
    time_limit=TIME_LIMIT_S,
)
def enrich_pending(self: Task[Any, Any]) -> int:
    """Enrich every report waiting for it, in leased batches of up to BATCH (whatever has arrived by the time the
    run starts: the kick's window is the linger), each batch enriched together and written in one transaction
    (enrichment.enrich_claimed). A report that fails keeps its raw row, shows `failed` with the error, and is
    retried by this task (backoff) and the sweep. Runs on the intake queue, within SOFT_TIME_LIMIT_S: past it the
    report at hand fails with that reason, the rest of its batch is given back and a new run takes over."""
    settings = get_settings()
    engine = get_engine(settings.resolved_database_url)
    within = settings.reports_geoparse_within or None
    # An X mention of a regional agency account arrived through that agency's area.
    channel_areas = {a.handle.lstrip("@").lower(): code for code, a in settings.x.accounts.items() if a.handle}
    run = enrichment.enrich_claimed if settings.report_enrich_batching else enrichment.enrich_one_by_one
    total = enrichment.BatchResult()
    for _ in range(MAX_ROUNDS):
        with session_scope(engine) as session:
            claim = enrichment.claim_batch(session, limit=BATCH)
        if not claim.ids:
            break
        try:
            total += run(
                engine,
                claim=claim,
                within=within,
                channel_areas=channel_areas,
                stop=(SoftTimeLimitExceeded,),
                stop_reason=f"batas waktu / time limit: enrichment run passed {SOFT_TIME_LIMIT_S} s",
            )
        except enrichment.Interrupted as exc:
            log.warning("enrichment stopped at the %ds time limit (%s)", SOFT_TIME_LIMIT_S, exc.result)
            enrich_pending.apply_async(countdown=1)
            return total.done + exc.result.done
    if total.done or total.failed:
        log.info("reports enriched: %d, failed: %d, claimed by another run: %d", total.done, total.failed, total.lost)
    if total.failed:
        raise self.retry(countdown=_backoff(self.request.retries))
    return total.done


@celery.task(name="reports.sweep", acks_late=True, soft_time_limit=SOFT_TIME_LIMIT_S, time_limit=TIME_LIMIT_S)
def sweep() -> None:
    """Start enrichment when reports wait for it (missed kicks, failures due for a retry, dead workers)."""
    settings = get_settings()
    with session_scope(get_engine(settings.resolved_database_url)) as session:
        waiting = enrichment.count_pending(session)
    if waiting:
        enrich_pending.delay()


@celery.task(name="reports.poll_x", acks_late=True, soft_time_limit=SOFT_TIME_LIMIT_S, time_limit=TIME_LIMIT_S)
def poll_x() -> None:
    """Store new mentions of every agency account and new posts matching the configured search (production
    only: elsewhere no provider is reached). A failing poll is logged and read again from its checkpoint."""
    settings = get_settings()
    if not settings.live_providers_allowed or not settings.x.configured:
        return
    config = channel_config(settings, "social")
    if not isinstance(config, XConfig):
        return
    engine = get_engine(settings.resolved_database_url)
    for account in config.accounts:
        if not account.user_id:
            continue
        connection = XConnection.build(config, account)
        try:
            with session_scope(engine) as session:
                new = intake.ingest_x_mentions(
                    session,
                    client=connection.client,
                    account=account.handle,
                    user_id=account.user_id,
                    author_key=settings.report_author_key,
                )
        except ChannelError as exc:
            log.warning("x mentions of @%s not polled: %s", account.handle, exc)
            continue
        if new:
            log.info("x mentions of @%s: %d new reports", account.handle, new)
            kick_enrichment()
    if settings.x.search_query and config.accounts:
        connection = XConnection.build(config, config.accounts[0])
        try:
            with session_scope(engine) as session:
                new = intake.ingest_x_search(
                    session,
                    client=connection.client,
                    query=settings.x.search_query,
                    author_key=settings.report_author_key,
                )
        except ChannelError as exc:
            log.warning("x search %r not polled: %s", settings.x.search_query, exc)
            return
        if new:
            log.info("x search %r: %d new reports", settings.x.search_query, new)
            kick_enrichment()

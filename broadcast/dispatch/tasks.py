"""Celery tasks of the fan-out. Arguments are ids only; every task is safe to run twice."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any, TypeVar

from celery import Task
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from broadcast import events
from broadcast.db import session_scope, utcnow
from broadcast.dispatch import claims, fallback, outcomes, pacing, planning
from broadcast.dispatch import plan as planner
from broadcast.dispatch import sweep as sweeping
from broadcast.runtime import active_channels, rate_limiter
from broadcast.runtime import engine as _engine
from broadcast.settings import get_settings
from broadcast.worker import celery

log = logging.getLogger(__name__)
T = TypeVar("T")
# A dropped database connection (restart, failover, terminated backend) is retried on a new one for ~10 s.
DB_TRIES = 8


def _db_retrying(what: str, work: Callable[[], T]) -> T:
    """Run one unit of database work, again on a fresh connection when the connection was lost (the pool
    drops a dead connection and pre-ping replaces it); anything else, or a database down for good, raises."""
    for attempt in range(1, DB_TRIES + 1):
        try:
            return work()
        except DBAPIError as exc:
            if not exc.connection_invalidated or attempt == DB_TRIES:
                raise
            log.warning("%s: database connection lost (%s); trying again", what, type(exc.orig).__name__)
            time.sleep(min(0.25 * 2 ** (attempt - 1), 2.0))
    raise AssertionError("unreachable")


@celery.task(name="dispatch.fanout_alert", bind=True, acks_late=True, max_retries=10)
def fanout_alert(self: Task[Any, Any], alert_id: int) -> None:
    """Plan an approved alert's deliveries, enqueueing each chunk's batches as soon as it is committed (the
    first messages leave while later rows are still being written). Retries on database errors; a rerun
    re-enqueues only what is still pending, and claims make a duplicate batch harmless."""
    settings = get_settings()
    channels = active_channels()
    first: dict[str, bool] = defaultdict(lambda: True)  # the channel's first batches are still to go
    deadline_s = settings.dispatch_send_deadline_s
    # The paced channels (a WhatsApp sender, a Telegram bot): their rate, for the room planning gives them and the
    # spacing of their batches. A channel that sends a whole batch in a couple of seconds (SMS) is not paced.
    paced_rates = {name: rate for name in channels if (rate := _batching(name)[1])}
    try:
        with Session(_engine(), expire_on_commit=False) as session:
            queue = planner.queue_of(session, alert_id=alert_id)
            stream = planner.plan_alert_stream(
                session,
                alert_id=alert_id,
                room=planning.send_room(paced_rates, deadline_s),
                send_deadline_s=deadline_s,
            )
            offset: dict[str, float] = defaultdict(float)  # a paced channel's next batch: seconds from now
            for part in stream:
                session.commit()  # enqueue only after the commit, or a worker may not find the rows yet
                for name, ids in part.items():
                    size, rate = _batching(name)
                    for chunk in planning.lead_batches(ids, size, lead=first[name]):
                        if rate:
                            # A paced channel's batches are spaced at its rate: each arrives about when its
                            # tokens do, so they do not all take worker processes at once to wait for them.
                            send_batch.apply_async(args=(chunk,), queue=queue, countdown=offset[name])
                            offset[name] += len(chunk) / rate * planning.PACING_SLACK
                        else:
                            send_batch.apply_async(args=(chunk,), queue=queue)
                    first[name] = False
                if part:
                    # The publish (AlertPublished: partners learn of it) goes right behind the first batches
                    # (ahead of them in the same queue, the partner planning would delay the first SMS). The
                    # first part is the publish alone (public pages first): it has no batches to wait for.
                    events.send_committed(session, app=celery)
            session.commit()
            events.send_committed(session, app=celery)
        if deadline_s > 0:
            # Rows still unsent at the send deadline move to the person's next channel (the sweep checks too).
            fall_back_alert.apply_async(args=(alert_id,), countdown=deadline_s + 1)
    except Exception as exc:
        log.exception("planning alert %s failed", alert_id)
        raise self.retry(exc=exc, countdown=planning.jittered(planning.backoff(self.request.retries))) from exc


def _batching(channel: str) -> tuple[int, float | None]:
    """Recipients per batch on `channel` (the configured size, the channel's own maximum, and no more than a paced
    channel sends in a couple of seconds, planning.paced_batch, so its batches take turns with SMS ones), and the
    channel's rate when that makes it paced (its batches then go out spaced)."""
    size = get_settings().dispatch_batch_size
    found = active_channels().get(channel)
    if found is None:
        return size, None
    size = min(size, found.limits.max_batch)
    if found.mode != "live":
        return size, None
    paced = planning.paced_batch(found.sustained_rate, size)
    return paced, (found.sustained_rate if paced < size else None)


class _StateReader:
    """Reads an alert's state during a batch on one autocommit connection held for the batch: each read is a
    single SELECT (no pool checkout and pre-ping, no BEGIN and ROLLBACK), and a lost connection is replaced."""

    def __init__(self, engine: Engine, alert_id: int) -> None:
        self._engine, self._alert_id = engine, alert_id
        self._conn: Connection | None = None

    def is_live(self) -> bool:
        if self._conn is None:
            self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            return claims.is_alert_live(self._conn, alert_id=self._alert_id)
        except DBAPIError:
            self.close()
            raise

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except DBAPIError:  # a dead connection is only discarded
                log.debug("closing the state reader's connection failed", exc_info=True)


@celery.task(name="dispatch.send_batch", bind=True, acks_late=True, max_retries=planning.MAX_ATTEMPTS)
def send_batch(self: Task[Any, Any], delivery_ids: list[int]) -> None:
    """Send this batch's pending deliveries once; retry only transient failures, with backoff. The alert's
    state is read again every few dozen messages: a cancel stops the batch and the rest is skipped."""
    settings = get_settings()
    engine = _engine()

    def claim() -> claims.ClaimedBatch:
        with session_scope(engine) as session:
            return claims.claim(
                session,
                delivery_ids=delivery_ids,
                lease_s=settings.dispatch_lease_s,
                public_base_url=settings.public_base_url,
            )

    # Every database step survives a dropped connection: the claim and the record are single transactions
    # (a lost claim left the rows pending; a lost record left them ours, `sending`, so writing again is safe).
    claimed = _db_retrying("claim", claim)
    if not claimed.items or claimed.alert is None:
        return
    alert_id = claimed.alert.id

    reader = _StateReader(engine, alert_id)
    try:
        sent = pacing.send_claimed(
            claimed,
            channels=active_channels(),
            limiter=rate_limiter(),
            still_live=lambda: _db_retrying("alert state check", reader.is_live),
        )
    finally:
        reader.close()

    def record() -> list[int]:
        with session_scope(engine) as session:
            return outcomes.record_results(session, sent=sent, fallback_s=settings.dispatch_fallback_s)

    retry_ids = _db_retrying("recording results", record)
    now_ids, later_ids = outcomes.fallback_checks(sent)
    if now_ids:
        fall_back.delay(now_ids)
    if later_ids:  # the beat sweep checks them too, should this countdown be lost with its worker
        fall_back.apply_async(args=(later_ids,), countdown=settings.dispatch_fallback_s + 1)
    if retry_ids:
        countdown = planning.jittered(
            planning.retry_countdown(self.request.retries, outcomes.retry_after_hint(sent, retry_ids))
        )
        # Retries wait in the routine queue: first attempts of a cancel or a tsunami warning go ahead of them.
        raise self.retry(args=(retry_ids,), countdown=countdown, queue=planning.ROUTINE_QUEUE)


@celery.task(name="dispatch.fall_back", bind=True, acks_late=True, max_retries=10)
def fall_back(self: Task[Any, Any], delivery_ids: list[int]) -> None:
    """Plan the next channel of each person whose delivery among these failed or was not delivered in time, and
    send it on the alert's queue. Rows not yet due are left alone; a rerun plans nothing twice. Retries on
    database errors with backoff; rows a lost run left due are found by the beat sweep."""
    try:
        with Session(_engine(), expire_on_commit=False) as session:
            planned = fallback.fall_back(session, delivery_ids=delivery_ids, now=utcnow())
            queues = {alert_id: planner.queue_of(session, alert_id=alert_id) for alert_id in planned}
            session.commit()
    except DBAPIError as exc:
        raise self.retry(exc=exc, countdown=planning.jittered(planning.backoff(self.request.retries))) from exc
    for alert_id, by_channel in planned.items():
        for channel, ids in by_channel.items():
            for chunk in planning.batches(ids, _batching(channel)[0]):
                send_batch.apply_async(args=(chunk,), queue=queues[alert_id])


@celery.task(name="dispatch.fall_back_alert", acks_late=True)
def fall_back_alert(alert_id: int) -> None:
    """At an alert's send deadline: hand its rows whose fallback time has come to `fall_back`, in batches."""
    with session_scope(_engine()) as session:
        ids = fallback.due(session, now=utcnow(), alert_id=alert_id, limit=None)
    for chunk in planning.batches(ids, get_settings().dispatch_batch_size):
        fall_back.delay(chunk)


@celery.task(name="dispatch.sweep", acks_late=True)
def sweep() -> None:
    """Re-enqueue work left behind by lost messages or dead workers (runs on beat)."""
    with session_scope(_engine()) as session:
        settings = get_settings()
        plan = sweeping.sweep(session, stale_s=settings.dispatch_stale_s, batch_size=settings.dispatch_batch_size)
    for alert_id in plan.fanout_alert_ids:
        fanout_alert.delay(alert_id)
    for chunk in plan.batches:
        send_batch.delay(chunk)
    for chunk in plan.fallbacks:
        fall_back.delay(chunk)
    if plan.fanout_alert_ids or plan.batches or plan.skipped or plan.fallbacks:
        log.info(
            "sweep: %d alerts re-planned, %d batches re-enqueued, %d skipped, %d fallback checks",
            len(plan.fanout_alert_ids),
            len(plan.batches),
            plan.skipped,
            len(plan.fallbacks),
        )

"""Celery tasks delivering partner webhooks: retried with backoff, logged per attempt."""

from __future__ import annotations

from typing import Any

from celery import Task

from broadcast.db import get_engine, session_scope
from broadcast.dispatch.planning import backoff
from broadcast.partners import service
from broadcast.settings import get_settings
from broadcast.worker import celery

MAX_ATTEMPTS = 8


@celery.task(name="partners.deliver", bind=True, acks_late=True, max_retries=MAX_ATTEMPTS)
def deliver(self: Task[Any, Any], delivery_id: int) -> None:
    """POST one signed delivery; 5xx, timeouts and 429 are retried with backoff, other 4xx fail at once."""
    settings = get_settings()
    engine = get_engine(settings.resolved_database_url)
    with session_scope(engine) as session:
        attempt = service.prepare(session, delivery_id=delivery_id, public_base_url=settings.public_base_url)
    if attempt is None:
        return
    status, error = None, None
    try:
        status = service.http_post(attempt.url, attempt.body, attempt.headers, allow=settings.outbound_allow_hosts)
    except OSError as exc:
        error = str(exc)
    final = self.request.retries >= MAX_ATTEMPTS
    with session_scope(engine) as session:
        state = service.record(session, delivery_id=delivery_id, status=status, error=error, final=final)
    if state == "pending":
        raise self.retry(countdown=backoff(self.request.retries))


@celery.task(name="partners.fan_out", acks_late=True)
def fan_out(alert_id: int) -> None:
    """Plan and enqueue a delivery to every interested partner for a published alert."""
    with session_scope(get_engine(get_settings().resolved_database_url)) as session:
        planned = service.plan_for_alert(session, alert_id=alert_id)
    for delivery_id in planned:
        deliver.delay(delivery_id)


@celery.task(name="partners.sweep", acks_late=True)
def sweep() -> None:
    """Re-enqueue pending deliveries whose task was lost (a restart, a dead worker)."""
    with session_scope(get_engine(get_settings().resolved_database_url)) as session:
        stale = service.stale_pending(session)
    for delivery_id in stale:
        deliver.delay(delivery_id)

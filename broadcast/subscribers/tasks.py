"""Celery tasks for consent requests. Arguments are ids only; each confirmation SMS is sent at most once."""

from __future__ import annotations

from celery import Task

from broadcast.db import get_engine, session_scope
from broadcast.dispatch.tasks import active_channels
from broadcast.settings import get_settings
from broadcast.subscribers import consent
from broadcast.worker import celery


@celery.task(
    name="subscribers.send_confirmations", bind=True, acks_late=True, max_retries=8, soft_time_limit=120, time_limit=150
)
def send_confirmations(self: Task, request_ids: list[int]) -> None:  # type: ignore[type-arg]
    """Send these requests' confirmation SMS, one transaction each; one the channel could not take yet stays
    pending and the task retries with a growing delay (the beat sweep picks up whatever is still left)."""
    engine = get_engine(get_settings().resolved_database_url)
    left = []
    for request_id in request_ids:
        with session_scope(engine) as session:
            request = consent.send_confirmation(session, request_id=request_id, channels=active_channels())
            if request is not None and request.sms_state == "pending":
                left.append(request_id)
    if left:
        raise self.retry(args=(left,), countdown=min(600, 15 * 2**self.request.retries))


@celery.task(name="subscribers.sweep_confirmations", soft_time_limit=60, time_limit=90)
def sweep_confirmations() -> None:
    """Enqueue every confirmation SMS still pending (the broker was down, or a retry ran out)."""
    with session_scope(get_engine(get_settings().resolved_database_url)) as session:
        ids = consent.pending_sms(session)
    if ids:
        send_confirmations.delay(ids)

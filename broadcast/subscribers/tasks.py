"""Celery tasks for consent requests. Arguments are ids only; each confirmation SMS is sent at most once."""

from __future__ import annotations

from typing import Any

from celery import Task
from sqlalchemy.orm import Session

from broadcast import runtime
from broadcast.subscribers import consent
from broadcast.worker import celery


def _still_pending(session: Session, request_id: int) -> bool:
    request = consent.send_confirmation(session, request_id=request_id, channels=runtime.active_channels())
    return request is not None and request.sms_state == "pending"


@celery.task(
    name="subscribers.send_confirmations", bind=True, acks_late=True, max_retries=8, soft_time_limit=120, time_limit=150
)
def send_confirmations(self: Task[Any, Any], request_ids: list[int]) -> None:
    """Send these requests' confirmation SMS, one transaction each; one the channel could not take yet stays
    pending and the task retries with a growing delay (the beat sweep picks up whatever is still left)."""
    runtime.send_each(self, request_ids, _still_pending)


@celery.task(name="subscribers.sweep_confirmations", soft_time_limit=60, time_limit=90)
def sweep_confirmations() -> None:
    """Enqueue every confirmation SMS still pending (the broker was down, or a retry ran out)."""
    runtime.enqueue_pending(send_confirmations, consent.pending_sms)

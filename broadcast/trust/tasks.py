"""Celery tasks for replies to citizens. Arguments are ids only; each reply is sent at most once."""

from __future__ import annotations

from typing import Any

from celery import Task
from sqlalchemy.orm import Session

from broadcast import runtime
from broadcast.trust import service
from broadcast.worker import celery


def _still_pending(session: Session, reply_id: int) -> bool:
    reply = service.send_reply(
        session, reply_id=reply_id, channels=runtime.active_channels(), limiter=runtime.rate_limiter()
    )
    return reply is not None and reply.state == "pending"


@celery.task(name="trust.send_replies", bind=True, acks_late=True, max_retries=8, soft_time_limit=120, time_limit=150)
def send_replies(self: Task[Any, Any], reply_ids: list[int]) -> None:
    """Send these pending replies, one transaction each, within each channel's limits (the fan-out's shared
    buckets); a reply the channel could not take yet stays pending and the task retries with a growing delay (the
    beat sweep picks up whatever is still left)."""
    runtime.send_each(self, reply_ids, _still_pending)


@celery.task(name="trust.sweep_replies", soft_time_limit=60, time_limit=90)
def sweep_replies() -> None:
    """Enqueue every reply still pending (after a worker died or a retry ran out)."""
    runtime.enqueue_pending(send_replies, service.pending_replies)

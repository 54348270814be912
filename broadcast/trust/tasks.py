"""Celery tasks for replies to citizens. Arguments are ids only; each reply is sent at most once."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task

from broadcast.db import get_engine, session_scope
from broadcast.dispatch.tasks import active_channels, rate_limiter
from broadcast.settings import get_settings
from broadcast.trust import service
from broadcast.worker import celery

log = logging.getLogger(__name__)


@celery.task(name="trust.send_replies", bind=True, acks_late=True, max_retries=8, soft_time_limit=120, time_limit=150)
def send_replies(self: Task[Any, Any], reply_ids: list[int]) -> None:
    """Send these pending replies, one transaction each, within each channel's limits (the fan-out's shared
    buckets); a reply the channel could not take yet stays pending and the task retries with a growing delay (the
    beat sweep picks up whatever is still left)."""
    engine = get_engine(get_settings().resolved_database_url)
    left = []
    for reply_id in reply_ids:
        with session_scope(engine) as session:
            reply = service.send_reply(session, reply_id=reply_id, channels=active_channels(), limiter=rate_limiter())
            if reply is not None and reply.state == "pending":
                left.append(reply_id)
    if left:
        raise self.retry(args=(left,), countdown=min(600, 15 * 2**self.request.retries))


@celery.task(name="trust.sweep_replies", soft_time_limit=60, time_limit=90)
def sweep_replies() -> None:
    """Enqueue every reply still pending (after a worker died or a retry ran out)."""
    with session_scope(get_engine(get_settings().resolved_database_url)) as session:
        ids = service.pending_replies(session)
    if ids:
        send_replies.delay(ids)

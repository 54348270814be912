"""Celery tasks bringing public reports in from social media."""

from __future__ import annotations

import logging

from broadcast.db import get_engine, session_scope
from broadcast.dispatch.wiring import x_config
from broadcast.reports import service
from broadcast.settings import get_settings
from broadcast.worker import celery
from channels.base import ChannelError
from channels.social import XConnection

log = logging.getLogger(__name__)


@celery.task(name="reports.poll_x", acks_late=True)
def poll_x() -> None:
    """Store new mentions of every agency account and new posts matching the configured search (production
    only: elsewhere no provider is reached). A failing poll is logged and read again from its checkpoint."""
    settings = get_settings()
    if not settings.live_providers_allowed or not settings.x.configured:
        return
    config = x_config(settings)
    if config is None:
        return
    engine = get_engine(settings.resolved_database_url)
    for account in config.accounts:
        if not account.user_id:
            continue
        connection = XConnection.build(config, account)
        try:
            with session_scope(engine) as session:
                new = service.ingest_x_mentions(
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
    if settings.x.search_query and config.accounts:
        connection = XConnection.build(config, config.accounts[0])
        try:
            with session_scope(engine) as session:
                new = service.ingest_x_search(
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

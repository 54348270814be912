"""Celery tasks of the alerts domain."""

from __future__ import annotations

import logging
from pathlib import Path

from broadcast.db import get_engine, session_scope
from broadcast.errors import Forbidden
from broadcast.fetch import fetch_url
from broadcast.intake import bmkg
from broadcast.settings import get_settings
from broadcast.users.service import system_actor
from broadcast.worker import celery

log = logging.getLogger(__name__)


def _read_source(source: str) -> list[tuple[str, bytes]]:
    if source.startswith(("http://", "https://")):
        return [(source, fetch_url(source))]
    return [(str(p), p.read_bytes()) for p in bmkg.source_files([Path(source)])]


# On the intake queue (broadcast.worker.INTAKE_ROUTES); a hung source cannot hold the process for long.
@celery.task(name="alerts.poll_bmkg", acks_late=True, soft_time_limit=120, time_limit=150)
def poll_bmkg() -> None:
    """Turn new items of the configured BMKG sources into drafts; re-polls add nothing twice.
    A source that fails is logged and tried again on the next beat."""
    settings = get_settings()
    engine = get_engine(settings.resolved_database_url)
    for source in settings.bmkg_sources:
        try:
            documents = _read_source(source)
        except OSError as exc:
            log.warning("BMKG source %s unreadable: %s", source, exc)
            continue
        for name, data in documents:
            try:
                with session_scope(engine) as session:
                    actor = system_actor(session, jurisdiction=settings.system_jurisdiction)
                    result = bmkg.detect_and_import(session, data, author=actor, fetch=fetch_url, name=name)
            except Forbidden as exc:
                log.warning("BMKG %s refused (%s): %s", name, exc.code, exc)
                continue
            if result.created or result.merged:
                log.info("BMKG %s: %d new drafts, %d merged", name, len(result.created), len(result.merged))

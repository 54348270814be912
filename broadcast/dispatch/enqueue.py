"""A transactional outbox for broker enqueues: what must be queued is first written to the database in the
transaction of the change that needs it, then put on the broker and deleted.

`add` (inside the caller's transaction, by `broadcast.events.record` for a durable event) → `send_now` right after
the commit (`broadcast.events.send_committed`) → `drain`, which the worker and beat run when they connect and every
DRAIN_INTERVAL_S seconds, for whatever the broker refused. A broker that is down at approval time delays the fan-out
until it answers again; it never loses it. A row is deleted only after the broker took the message, so a crash
between the two sends it twice at worst, which the tasks tolerate (fan-out planning and partner planning are
idempotent).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from broadcast.db import session_factory, utcnow
from broadcast.dispatch.models import PendingEnqueue

log = logging.getLogger(__name__)

DRAIN_INTERVAL_S = 2.0
# Rows younger than this are still being sent by the request that wrote them; older ones are "waiting".
WAITING_AFTER_S = 5.0


def add(session: Session, *, task: str, args: list[Any], queue: str, alert_id: int | None = None) -> PendingEnqueue:
    """Record a task to enqueue, in the caller's transaction (it exists exactly when the change commits)."""
    row = PendingEnqueue(task=task, args=args, queue=queue, alert_id=alert_id, attempts=0)
    session.add(row)
    session.flush()
    return row


def _publish(app: Any, row: PendingEnqueue) -> None:
    # No publish retries: a broker that is down answers at once; the drain loop is the retry.
    app.send_task(row.task, args=list(row.args), queue=row.queue, retry=False)


def send_now(bind: Engine | Connection, app: Any, row_id: int) -> bool:
    """Put one committed row on the broker and delete it; False (the row stays for `drain`) when the broker
    refused. `bind` is the engine, or the connection of the session that committed the row."""
    with Session(bind=bind, expire_on_commit=False) as session:
        # A drain loop sending this row holds its lock (PostgreSQL): skip it rather than send it a second time.
        row = session.get(PendingEnqueue, row_id, with_for_update={"skip_locked": True})
        if row is None:
            return True  # a drain loop was quicker
        try:
            _publish(app, row)
        except Exception as exc:
            log.warning("broker refused %s%s (%s): waiting in the outbox", row.task, row.args, type(exc).__name__)
            session.execute(
                update(PendingEnqueue)
                .where(PendingEnqueue.id == row_id)
                .values(attempts=PendingEnqueue.attempts + 1, last_error=f"{type(exc).__name__}: {exc}"[:500])
            )
            session.commit()
            return False
        session.execute(delete(PendingEnqueue).where(PendingEnqueue.id == row_id))
        session.commit()
        return True


def drain(engine: Engine, app: Any, *, limit: int = 500) -> int:
    """Enqueue every waiting row, oldest first, until the broker refuses one; returns how many were sent."""
    sent = 0
    with session_factory(engine)() as session:
        stmt = select(PendingEnqueue).order_by(PendingEnqueue.id).limit(limit)
        if engine.dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)  # two drainers never send the same row at once
        for row in session.scalars(stmt):
            try:
                _publish(app, row)
            except Exception as exc:
                row.attempts += 1
                row.last_error = f"{type(exc).__name__}: {exc}"[:500]
                break
            session.delete(row)
            sent += 1
        session.commit()
    if sent:
        log.info("outbox: %d waiting task(s) enqueued", sent)
    return sent


@dataclass(frozen=True)
class Waiting:
    count: int
    alert_ids: list[int]
    oldest_s: float
    last_error: str | None


def waiting(session: Session, *, alert_id: int | None = None) -> Waiting:
    """Rows the broker refused at least once or has not taken for WAITING_AFTER_S seconds (of one alert when
    given)."""
    cutoff = utcnow() - timedelta(seconds=WAITING_AFTER_S)
    cond = [or_(PendingEnqueue.attempts > 0, PendingEnqueue.created_at < cutoff)]
    if alert_id is not None:
        cond.append(PendingEnqueue.alert_id == alert_id)
    count, oldest = session.execute(select(func.count(), func.min(PendingEnqueue.created_at)).where(*cond)).one()
    if not count:
        return Waiting(0, [], 0.0, None)
    alert_ids = sorted(
        {a for (a,) in session.execute(select(PendingEnqueue.alert_id).where(*cond).limit(100)) if a is not None}
    )
    error = session.scalar(select(PendingEnqueue.last_error).where(*cond).order_by(PendingEnqueue.id.desc()).limit(1))
    return Waiting(int(count), alert_ids, (utcnow() - oldest).total_seconds(), error)


def start_drain_loop(engine_for: Callable[[], Engine], app: Any, *, name: str) -> threading.Thread:
    """A daemon thread that drains the outbox at once and then every DRAIN_INTERVAL_S seconds (worker, beat)."""

    def loop() -> None:
        stop = threading.Event()
        while not stop.is_set():
            try:
                drain(engine_for(), app)
            except Exception:
                log.warning("outbox drain (%s) failed; retrying", name, exc_info=True)
            stop.wait(DRAIN_INTERVAL_S)

    thread = threading.Thread(target=loop, name=f"outbox-drain-{name}", daemon=True)
    thread.start()
    return thread

"""After-commit events: what a use case did that other domains act on, recorded on the unit of work (the
SQLAlchemy session) and handed to the broker only once that work has committed.

Services call `record(session, SomethingHappened(...))`; entrypoints commit and then call `send_committed`. This
module is the one map from an event to the Celery task that acts on it (by task name: no domain imports another's
tasks). Events of a transaction that rolls back (or a savepoint that rolls back, or a session closed without a
commit) are dropped, never sent.

A `durable` route also writes the task to the enqueue outbox (`broadcast.dispatch.enqueue`) in the recording
transaction, so it exists exactly when the change commits: if the broker refuses it after the commit, the worker's
and beat's drain loops send it later (at-least-once). The other routes have a beat sweep behind them that finds the
rows still pending.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session, SessionTransaction

from broadcast.dispatch import enqueue
from broadcast.dispatch.planning import ROUTINE_QUEUE, queue_for

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened in a transaction; a task acts on it after the commit."""


@dataclass(frozen=True, slots=True)
class AlertApproved(Event):
    """A second person approved the alert: plan and send its deliveries (`dispatch.fanout_alert`)."""

    alert_id: int
    msg_type: str
    severity: str
    urgency: str


@dataclass(frozen=True, slots=True)
class AlertPublished(Event):
    """The alert went live (its first deliveries are planned): tell the partners (`partners.fan_out`)."""

    alert_id: int


@dataclass(frozen=True, slots=True)
class ReplyQueued(Event):
    """A reply to a citizen waits to be sent (`trust.send_replies`)."""

    reply_id: int


@dataclass(frozen=True, slots=True)
class ConsentRequested(Event):
    """A confirmation SMS for a staff registration waits to be sent (`subscribers.send_confirmations`)."""

    request_id: int


@dataclass(frozen=True, slots=True)
class Route:
    """How an event becomes a task: its name, its arguments, its queue (None: the app's routing decides) and
    whether the task is written to the enqueue outbox in the recording transaction."""

    task: str
    args: Callable[[Any], list[Any]]
    queue: Callable[[Any], str | None] = lambda _: None
    durable: bool = False
    batched: bool = False  # events of one commit share one task, their args' first items gathered in one list


ROUTES: dict[type[Event], Route] = {
    AlertApproved: Route(
        "dispatch.fanout_alert",
        args=lambda e: [e.alert_id],
        queue=lambda e: queue_for(msg_type=e.msg_type, severity=e.severity, urgency=e.urgency),
        durable=True,
    ),
    # Behind the first batches on the routine queue: ahead of them the partner planning would delay the first SMS.
    AlertPublished: Route("partners.fan_out", args=lambda e: [e.alert_id], queue=lambda _: ROUTINE_QUEUE, durable=True),
    # The trust and consent sweeps send whatever the broker refused (the rows stay pending).
    ReplyQueued: Route("trust.send_replies", args=lambda e: [e.reply_id], batched=True),
    ConsentRequested: Route("subscribers.send_confirmations", args=lambda e: [e.request_id], batched=True),
}


@dataclass(slots=True)
class _Recorded:
    event: Event
    transaction: SessionTransaction
    outbox_id: int | None = None


@dataclass(slots=True)
class _Log:
    pending: list[_Recorded] = field(default_factory=list)
    committed: list[_Recorded] = field(default_factory=list)


_KEY = "broadcast.events"


def _log(session: Session) -> _Log:
    found = session.info.get(_KEY)
    if found is None:
        found = session.info[_KEY] = _Log()
    assert isinstance(found, _Log)
    return found


def record(session: Session, event: Event) -> None:
    """Record `event` in the session's current transaction: it is sent after that transaction commits, never if
    it rolls back. A durable event's task is written to the outbox now (flushes)."""
    route = ROUTES[type(event)]
    transaction = session.get_nested_transaction() or session.get_transaction() or session.begin()
    entry = _Recorded(event, transaction)
    if route.durable:
        queue = route.queue(event) or ROUTINE_QUEUE
        row = enqueue.add(
            session, task=route.task, args=route.args(event), queue=queue, alert_id=getattr(event, "alert_id", None)
        )
        entry.outbox_id = row.id
    _log(session).pending.append(entry)


def recorded(session: Session) -> list[Event]:
    """Events recorded in the session's open transaction, not yet committed (for tests and checks)."""
    log_ = session.info.get(_KEY)
    return [r.event for r in log_.pending] if isinstance(log_, _Log) else []


@sa_event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    log_ = session.info.get(_KEY)
    if not isinstance(log_, _Log) or not log_.pending:
        return
    if session.get_nested_transaction() is not None:
        return  # a savepoint released: its events wait for the enclosing transaction
    log_.committed.extend(log_.pending)
    log_.pending.clear()


def _within(transaction: SessionTransaction, ended: SessionTransaction) -> bool:
    t: SessionTransaction | None = transaction
    while t is not None:
        if t is ended:
            return True
        t = t.parent
    return False


@sa_event.listens_for(Session, "after_soft_rollback")
def _rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    log_ = session.info.get(_KEY)
    if isinstance(log_, _Log) and log_.pending:
        log_.pending[:] = [r for r in log_.pending if not _within(r.transaction, previous_transaction)]


@sa_event.listens_for(Session, "after_transaction_end")
def _ended(session: Session, transaction: SessionTransaction) -> None:
    # The outermost transaction ended without a commit (a close, a rollback): nothing of it may be sent.
    log_ = session.info.get(_KEY)
    if transaction.parent is None and isinstance(log_, _Log) and log_.pending:
        log_.pending[:] = [r for r in log_.pending if not _within(r.transaction, transaction)]


@dataclass(frozen=True, slots=True)
class Sent:
    """What became of one committed event: `queued` is False when the broker refused it (a durable event then
    waits in the outbox; any other is left to its sweep)."""

    event: Event
    queued: bool


def send_committed(session: Session, *, app: Any) -> list[Sent]:
    """Hand every event committed in this session to the broker through the Celery `app`, in the order recorded
    (call after `session.commit()`; events of a batched route go as one task); each is sent once, and the session
    forgets it. Never raises for a broker that is down."""
    log_ = session.info.get(_KEY)
    if not isinstance(log_, _Log) or not log_.committed:
        return []
    committed, log_.committed = log_.committed, []
    groups: dict[object, list[_Recorded]] = {}
    for entry in committed:
        kind = type(entry.event)
        groups.setdefault(kind if ROUTES[kind].batched else id(entry), []).append(entry)
    results: list[Sent] = []
    for entries in groups.values():
        first = entries[0]
        route = ROUTES[type(first.event)]
        if first.outbox_id is not None:
            queued = enqueue.send_now(session.get_bind(), app, first.outbox_id)
        elif route.batched:
            queued = _send(app, route, first.event, [[a for e in entries for a in route.args(e.event)]])
        else:
            queued = _send(app, route, first.event, route.args(first.event))
        results.extend(Sent(e.event, queued) for e in entries)
    return results


def _send(app: Any, route: Route, event: Event, args: list[Any]) -> bool:
    queue = route.queue(event)
    try:
        app.send_task(route.task, args=args, retry=False, **({"queue": queue} if queue else {}))
    except Exception as exc:  # the rows stay pending; the sweep sends them
        log.warning("broker refused %s%s (%s): left to the sweep", route.task, args, type(exc).__name__)
        return False
    return True

"""After-commit events (broadcast.events) with a real Celery app on the test Redis: what a rolled-back transaction
recorded never reaches the broker, what a committed one recorded reaches it exactly once, and an approval's fan-out
is in the enqueue outbox exactly when the approval committed."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from celery import Celery

from broadcast import events
from broadcast.alerts import service as alerts
from broadcast.alerts.schemas import AlertCreate
from broadcast.dispatch.models import PendingEnqueue
from broadcast.settings import Settings
from broadcast.worker import create_celery
from tests.factories import alert_payload, make_team

pytestmark = pytest.mark.integration

QUEUES = ("critical", "broadcast", "intake")


@pytest.fixture
def app(redis_url: str) -> Iterator[Celery]:
    celery = create_celery(Settings(environment="test", broker_url=redis_url))
    yield celery
    celery.close()


def on_broker(redis_url: str) -> list[tuple[str, str, list[Any]]]:
    """(queue, task, args) of every message waiting on the broker, as a worker would read them."""
    client = redis.Redis.from_url(redis_url)
    found = []
    for queue in QUEUES:
        for raw in reversed(client.lrange(queue, 0, -1)):  # kombu pushes on the left: oldest last
            message = json.loads(raw)
            args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
            found.append((queue, message["headers"]["task"], args))
    return found


def outbox(session: sa.orm.Session) -> list[tuple[str, list[Any]]]:
    return [(r.task, list(r.args)) for r in session.scalars(sa.select(PendingEnqueue).order_by(PendingEnqueue.id))]


def test_events_of_a_rolled_back_transaction_are_never_sent(session, app, redis_url):
    events.record(session, events.ReplyQueued(1))
    session.rollback()
    events.record(session, events.ReplyQueued(2))
    with pytest.raises(RuntimeError), session.begin_nested():  # a savepoint that rolls back takes its events along
        events.record(session, events.ReplyQueued(3))
        raise RuntimeError("savepoint fails")
    with session.begin_nested():  # a released savepoint's events wait for the enclosing commit
        events.record(session, events.ReplyQueued(4))
    assert events.recorded(session) == [events.ReplyQueued(2), events.ReplyQueued(4)]
    session.commit()
    events.record(session, events.ReplyQueued(5))
    session.close()  # closed without a commit: rolled back

    sent = events.send_committed(session, app=app)

    assert [s.event for s in sent] == [events.ReplyQueued(2), events.ReplyQueued(4)] and all(s.queued for s in sent)
    assert on_broker(redis_url) == [("intake", "trust.send_replies", [[2, 4]])]


def test_a_committed_event_is_sent_exactly_once(session, app, redis_url):
    events.record(session, events.ConsentRequested(7))
    assert events.send_committed(session, app=app) == []  # not committed yet: nothing goes
    session.commit()

    first = events.send_committed(session, app=app)
    again = events.send_committed(session, app=app)

    assert [(s.event, s.queued) for s in first] == [(events.ConsentRequested(7), True)] and again == []
    assert on_broker(redis_url) == [("intake", "subscribers.send_confirmations", [[7]])]


def _submitted(session: sa.orm.Session, team: dict[str, Any], severity: str = "Severe") -> int:
    payload = alert_payload()
    for info in payload["infos"]:
        info["severity"] = severity
    alert = alerts.create_alert(session, data=AlertCreate(**payload), author=team["operator"], sender="bpbd@palu")
    alerts.submit_alert(session, alert_id=alert.id, actor=team["operator"])
    session.commit()
    return alert.id


def test_an_approval_puts_its_fanout_in_the_outbox_only_when_it_commits(session, app, redis_url):
    team = make_team(session)
    session.commit()
    alert_id = _submitted(session, team)

    alert = alerts.approve_alert(session, alert_id=alert_id, approver=team["approver"], production=True)
    alerts.start_delivery(session, alert=alert)
    assert outbox(session) == [("dispatch.fanout_alert", [alert_id])]  # written in the approval's transaction
    session.rollback()
    assert outbox(session) == [] and events.send_committed(session, app=app) == []
    assert on_broker(redis_url) == []

    alert = alerts.approve_alert(session, alert_id=alert_id, approver=team["approver"], production=True)
    alerts.start_delivery(session, alert=alert)
    session.commit()
    sent = events.send_committed(session, app=app)

    assert [(s.event.__class__, s.queued) for s in sent] == [(events.AlertApproved, True)]
    assert events.send_committed(session, app=app) == []
    assert on_broker(redis_url) == [("broadcast", "dispatch.fanout_alert", [alert_id])]
    session.expire_all()
    assert outbox(session) == []  # the broker took it: the row is gone


def test_an_approval_the_broker_refuses_waits_in_the_outbox(session, redis_url):
    team = make_team(session)
    session.commit()
    alert_id = _submitted(session, team, severity="Extreme")  # Extreme and Immediate: the critical queue
    alert = alerts.approve_alert(session, alert_id=alert_id, approver=team["approver"], production=True)
    alerts.start_delivery(session, alert=alert)
    session.commit()
    down = create_celery(Settings(environment="test", broker_url="redis://127.0.0.1:1/0"))
    try:
        sent = events.send_committed(session, app=down)
    finally:
        down.close()

    assert [s.queued for s in sent] == [False]
    session.expire_all()
    rows = session.scalars(sa.select(PendingEnqueue)).all()
    assert [(r.task, r.queue, r.alert_id, r.attempts) for r in rows] == [
        ("dispatch.fanout_alert", "critical", alert_id, 1)
    ]

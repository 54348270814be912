"""Partner webhooks: signed JSON + CAP, replay-safe, retried, logged; a real worker delivers them."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from broadcast.alerts import service as alerts
from broadcast.alerts.schemas import AlertCreate
from broadcast.api.app import create_app
from broadcast.cap import validation
from broadcast.db import session_scope
from broadcast.dispatch.plan import plan_alert
from broadcast.partners import service, signing
from broadcast.partners.models import PartnerDelivery
from broadcast.settings import Settings
from broadcast.users.models import User
from tests.factories import PASSWORD, alert_payload, make_team

pytestmark = pytest.mark.integration


class Receiver:
    """A partner's endpoint: checks the signature, refuses replays, can be told to fail."""

    def __init__(self) -> None:
        self.secret = ""
        self.received: list[dict] = []
        self.seen: set[str] = set()
        self.fail_next: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.fail_next:
                    self._reply(receiver.fail_next.pop(0))
                    return
                if not signing.verify(receiver.secret, self.headers.get(signing.HEADER), body):
                    self._reply(401)
                    return
                delivery = self.headers["X-Broadcast-Delivery"]
                if delivery in receiver.seen:
                    self._reply(409)
                    return
                receiver.seen.add(delivery)
                receiver.received.append(json.loads(body))
                self._reply(204)

            def _reply(self, status: int) -> None:
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture(autouse=True)
def _allow_local_receiver(monkeypatch):
    """The receiver is a local fake on 127.0.0.1: allowed explicitly, as the outbound guard requires."""
    from broadcast.settings import get_settings

    monkeypatch.setenv("BROADCAST_OUTBOUND_ALLOW_HOSTS", '["127.0.0.1"]')
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def team(engine):
    with session_scope(engine) as s:
        make_team(s)
    with session_scope(engine) as s:
        return {u.username: u for u in s.scalars(sa.select(User))}


def publish(engine, team, status="Actual", codes=("72.71",)):
    with session_scope(engine) as s:
        alert = alerts.create_alert(s, data=AlertCreate(**alert_payload(status, codes=list(codes))),
                                    author=team["op.palu"], sender="bpbd@palu")
        alerts.submit_alert(s, alert_id=alert.id, actor=team["op.palu"])
        alerts.approve_alert(s, alert_id=alert.id, approver=team["apv.sulteng"], production=True)
        plan_alert(s, alert_id=alert.id)
        return alert.id


def deliver_once(engine, delivery_id):
    with session_scope(engine) as s:
        attempt = service.prepare(s, delivery_id=delivery_id, public_base_url="https://p.example.id")
    if attempt is None:
        return None
    status = service.http_post(attempt.url, attempt.body, attempt.headers)
    with session_scope(engine) as s:
        return service.record(s, delivery_id=delivery_id, status=status, error=None, final=False)


def test_admin_registers_and_the_secret_is_shown_once(db_url, engine, team, receiver, redis_url):
    # Sign-in needs its throttle's store (Redis): without it, it is refused (issue 22).
    settings = Settings(environment="test", database_url=db_url, secret_key="k" * 20, broker_url=redis_url)
    with TestClient(create_app(settings)) as client:
        token = client.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}).json()
        admin = {"Authorization": f"Bearer {token['access_token']}"}
        created = client.post("/api/v1/partners/webhooks", json={"name": "Alert Hub", "url": receiver.url},
                              headers=admin)
        assert created.status_code == 201 and len(created.json()["secret"]) > 30
        listed = client.get("/api/v1/partners/webhooks", headers=admin).json()
        assert "secret" not in listed[0]
        op_token = client.post("/api/v1/auth/login", json={"username": "op.palu", "password": PASSWORD}).json()
        op = {"Authorization": f"Bearer {op_token['access_token']}"}
        assert client.post("/api/v1/partners/webhooks", json={"name": "x", "url": receiver.url},
                           headers=op).status_code == 403
        bad = client.post("/api/v1/partners/webhooks", json={"name": "x", "url": "ftp://nope.example"}, headers=admin)
        assert bad.status_code == 422
        assert client.post("/api/v1/partners/webhooks", json={"name": "x", "url": receiver.url,
                                                              "area_code": "99.99"}, headers=admin).status_code == 422
        hook_id = created.json()["id"]
        alert_id = publish(engine, team)
        with session_scope(engine) as s:
            [delivery_id] = service.plan_for_alert(s, alert_id=alert_id)
        receiver.secret = created.json()["secret"]
        assert deliver_once(engine, delivery_id) == "delivered"
        log = client.get(f"/api/v1/partners/webhooks/{hook_id}/deliveries", headers=admin).json()
        assert log[0]["state"] == "delivered" and log[0]["last_status_code"] == 204


def test_signed_payload_carries_valid_cap_and_replays_are_refused(engine, team, receiver):
    with session_scope(engine) as s:
        _, secret = service.register(s, name="p", url=receiver.url, statuses=["Actual"], area_code=None,
                                     actor_id=team["admin"].id)
    receiver.secret = secret
    alert_id = publish(engine, team)
    with session_scope(engine) as s:
        [delivery_id] = service.plan_for_alert(s, alert_id=alert_id)
        attempt = service.prepare(s, delivery_id=delivery_id, public_base_url="https://p.example.id")
    assert service.http_post(attempt.url, attempt.body, attempt.headers) == 204
    payload = receiver.received[0]
    assert payload["event"] == "publish" and payload["alert"]["status"] == "Actual"
    assert validation.parse_cap(payload["cap"].encode()).identifier == payload["alert"]["identifier"]
    assert service.http_post(attempt.url, attempt.body, attempt.headers) == 409  # same request replayed
    forged = {**attempt.headers, signing.HEADER: signing.sign("wrong-secret", attempt.body)}
    assert service.http_post(attempt.url, attempt.body, forged) == 401
    old = int(time.time()) - 3600
    assert not signing.verify(secret, signing.sign(secret, attempt.body, timestamp=old), attempt.body)
    assert not signing.verify(secret, attempt.headers[signing.HEADER], attempt.body + b" ")


def test_filters_retries_and_permanent_failures(engine, team, receiver):
    with session_scope(engine) as s:
        _, secret = service.register(s, name="palu", url=receiver.url, statuses=["Actual"],
                                               area_code="72.71", actor_id=team["admin"].id)
        service.register(s, name="grobogan", url=receiver.url, statuses=["Actual"], area_code="33.15",
                         actor_id=team["admin"].id)
    receiver.secret = secret
    assert _plan(engine, publish(engine, team, status="Exercise")) == []  # exercises only to those who asked
    alert_id = publish(engine, team)
    [delivery_id] = _plan(engine, alert_id)  # Grobogan's partner is not told about Palu
    receiver.fail_next = [503, 500]
    assert deliver_once(engine, delivery_id) == "pending"
    assert deliver_once(engine, delivery_id) == "pending"
    assert deliver_once(engine, delivery_id) == "delivered"
    assert deliver_once(engine, delivery_id) is None  # nothing left to send
    other = publish(engine, team)
    [second] = _plan(engine, other)
    receiver.fail_next = [404]
    assert deliver_once(engine, second) == "failed"
    with session_scope(engine) as s:
        attempts = s.scalar(sa.select(PartnerDelivery.attempts).where(PartnerDelivery.id == delivery_id))
    assert attempts == 3


def _plan(engine, alert_id):
    with session_scope(engine) as s:
        return service.plan_for_alert(s, alert_id=alert_id)


def test_a_real_worker_delivers_after_publish(engine, db_url, team, receiver, redis_url, monkeypatch):
    from celery.contrib.testing.worker import start_worker

    from broadcast.dispatch.planning import QUEUES
    from broadcast.settings import get_settings
    from broadcast.worker import celery

    monkeypatch.setenv("BROADCAST_DATABASE_URL", db_url)
    get_settings.cache_clear()
    with session_scope(engine) as s:
        _, receiver.secret = service.register(s, name="p", url=receiver.url, statuses=["Actual"], area_code=None,
                                              actor_id=team["admin"].id)
    alert_id = publish(engine, team)
    try:
        # Name the queues: another test's start_worker(queues=["intake"]) in this process leaves the app consuming
        # from that queue only (celery's Queues.select keeps its choice), and partner work is routine-queue work.
        with start_worker(celery, pool="solo", perform_ping_check=False, shutdown_timeout=30, queues=list(QUEUES)):
            from broadcast.partners.tasks import fan_out

            fan_out.delay(alert_id)
            deadline = time.monotonic() + 30
            while not receiver.received and time.monotonic() < deadline:
                time.sleep(0.1)
    finally:
        get_settings.cache_clear()
    assert [p["alert"]["identifier"] for p in receiver.received] == [_identifier(engine, alert_id)]


def _identifier(engine, alert_id):
    with session_scope(engine) as s:
        return alerts.get_alert(s, alert_id=alert_id).identifier

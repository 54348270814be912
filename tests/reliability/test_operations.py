"""Operations: /metrics, /readyz, JSON logs with alert ids, and `broadcast doctor`."""

from __future__ import annotations

import io
import json
import logging

import pytest
import redis
import sqlalchemy as sa
from typer.testing import CliRunner

from broadcast.db import session_scope
from broadcast.dispatch.models import Delivery
from broadcast.doctor import Level, diagnose
from broadcast.logs import configure_logging, current_alert_id
from broadcast.reports import intake
from tests.conftest import TEST_REDIS_URL
from tests.factories import alert_payload
from tests.reliability.helpers import make_settings, world

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("dbs", ["sqlite", "postgresql"], indirect=True)
def test_metrics_expose_queues_deliveries_errors_and_intake(db_url, redis_url, engine, record):
    with world(db_url, redis_url, engine) as w:
        alert_id = w.client.post("/api/v1/alerts", json=alert_payload("Exercise"),
                                 headers=w.headers("operator")).json()["id"]
        with session_scope(engine) as s:
            s.add_all([
                Delivery(alert_id=alert_id, channel="sms", recipient_key="a", state="sent"),
                Delivery(alert_id=alert_id, channel="sms", recipient_key="b", state="failed", error="twilio 21211"),
                Delivery(alert_id=alert_id, channel="social", recipient_key="c", state="pending"),
            ])
            intake.store_inbound(s, source="sms", external_id="SM1", raw={}, author="h")
        client = redis.Redis.from_url(redis_url)
        client.lpush("broadcast", b"x", b"y")
        client.lpush("critical", b"z")
        text = w.client.get("/metrics").text
    expected = ('broadcast_deliveries{channel="sms",state="sent"} 1.0',
                'broadcast_deliveries{channel="sms",state="failed"} 1.0',
                'broadcast_provider_errors_total{channel="sms"} 1.0',
                'broadcast_reports_received_total{source="sms"} 1.0',
                'broadcast_queue_depth{queue="broadcast"} 2.0',
                'broadcast_queue_depth{queue="critical"} 1.0',
                "broadcast_broker_up 1.0")
    missing = [line for line in expected if line not in text]
    record("operations", "/metrics: queue depth, deliveries by state, provider errors, intake",
           "exposed" if not missing else f"missing {missing}", ok=not missing)
    assert not missing, missing


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_metrics_token_when_configured(db_url, redis_url, engine):
    with world(db_url, redis_url, engine, metrics_token="scrape-me") as w:
        assert w.client.get("/metrics").status_code == 401
        assert w.client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert w.client.get("/metrics", headers={"Authorization": "Bearer scrape-me"}).status_code == 200


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_readyz_names_what_is_down(db_url, redis_url, engine, record):
    with world(db_url, redis_url, engine) as w:
        no_worker = w.client.get("/readyz")  # no Celery worker listens on this test's broker database
        healthz = w.client.get("/healthz").status_code
    from fastapi.testclient import TestClient

    from broadcast.api.app import create_app

    with TestClient(create_app(make_settings(db_url, "redis://127.0.0.1:1/0"))) as client:
        no_broker = client.get("/readyz")
    checks = no_worker.json().get("checks", {}) if no_worker.status_code == 503 else {}
    named = {
        "no worker": no_worker.status_code == 503
        and checks.get("database", {}).get("ok") is True
        and checks.get("broker", {}).get("ok") is True
        and checks.get("workers", {}).get("ok") is False,
        "broker down": no_broker.status_code == 503 and no_broker.json()["checks"]["broker"]["ok"] is False,
        "healthz": healthz == 200,
    }
    broken = [k for k, v in named.items() if not v]
    record("operations", "/readyz with no worker, then with the broker down",
           "503 naming the failed check" if not broken else "BROKEN: " + ", ".join(broken), ok=not broken, tries=2)
    assert not broken, (broken, no_worker.text, no_broker.text)


def test_json_logs_carry_the_alert_id(tmp_path):
    stream = io.StringIO()
    settings = make_settings(f"sqlite:///{tmp_path}/x.sqlite3", TEST_REDIS_URL, log_format="json")
    configure_logging(settings, stream=stream)
    try:
        log = logging.getLogger("broadcast.test")
        token = current_alert_id.set(42)
        log.warning("sending batch")
        current_alert_id.reset(token)
        log.info("explicit", extra={"alert_id": 7})
        log.info("no alert")
    finally:
        configure_logging(make_settings(f"sqlite:///{tmp_path}/x.sqlite3", TEST_REDIS_URL))
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(r["message"], r["alert_id"], r["level"]) for r in lines] == [
        ("sending batch", 42, "WARNING"), ("explicit", 7, "INFO"), ("no alert", None, "INFO")]
    assert all(r["logger"] == "broadcast.test" and r["time"] for r in lines)


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_doctor_finds_what_is_wrong(dbs, redis_url, record):
    broken = make_settings("postgresql+psycopg://nobody@127.0.0.1:1/none", "redis://127.0.0.1:1/0",
                           environment="production", secret_key="s" * 40, public_base_url="http://x.example")
    found = {f.check: f for f in diagnose(broken, worker_timeout_s=0.2)}
    checks = ("database", "broker", "workers", "channel sms", "channel social", "twilio webhooks", "public URL",
              "CAP signing")
    missed = [c for c in checks if c not in found or found[c].level is not Level.FAIL]
    record("operations", "broadcast doctor on a broken production deployment",
           "every fault named" if not missed else f"missed {missed}", ok=not missed, tries=len(checks))
    assert not missed, [(c, found.get(c)) for c in missed]
    empty = dbs.empty()
    with sa.create_engine(empty).connect():
        pass
    found = {f.check: f for f in diagnose(make_settings(empty, redis_url), worker_timeout_s=0.2)}
    assert found["migrations"].level is Level.FAIL and found["database"].level is Level.OK
    assert found["secret key"].level is Level.OK and found["broker"].level is Level.OK
    assert found["CAP signing"].level is Level.OK  # outside production a development key signs


def test_doctor_checks_the_cap_signing_files(tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    settings = make_settings(f"sqlite:///{tmp_path}/x.sqlite3", "redis://127.0.0.1:1/0",
                             cap_signing={"key_path": key, "cert_path": cert})
    from broadcast.doctor import _cap_signing

    assert _cap_signing(settings)[0].level is Level.FAIL and "cannot read" in _cap_signing(settings)[0].detail
    key.write_text("k")
    cert.write_text("c")
    assert _cap_signing(settings)[0].level is Level.OK


def test_doctor_command_exit_code(monkeypatch, tmp_path):
    from broadcast.cli import app
    from broadcast.settings import get_settings

    monkeypatch.setenv("BROADCAST_DATABASE_URL", f"sqlite:///{tmp_path}/empty.sqlite3")
    monkeypatch.setenv("BROADCAST_BROKER_URL", "redis://127.0.0.1:1/0")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["doctor", "--worker-timeout", "0.2"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    assert "migrations" in result.output and "broker" in result.output and "FAIL" in result.output
    monkeypatch.setenv("BROADCAST_ENVIRONMENT", "production")
    monkeypatch.setenv("BROADCAST_SECRET_KEY", "dev-insecure-secret-change-me")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["doctor"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1 and "SECRET_KEY" in result.output

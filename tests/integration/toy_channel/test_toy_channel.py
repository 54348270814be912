"""Adding a channel takes its package and one registry line: the toy channel (tests/integration/toy_channel), once
registered, is accepted in alerts, shown in the composer's previews, and a real fan-out by a real Celery worker
delivers to it: nothing else in the service was edited for it."""

import time

import pytest
import sqlalchemy as sa

from broadcast.dispatch.models import Delivery
from broadcast.subscribers.models import Subscriber
from channels import registry
from tests.factories import alert_payload
from tests.integration.toy_channel import DELIVERED, TOY
from tests.reliability.helpers import world

pytestmark = pytest.mark.integration
CHANNELS = ["sms", "toy", "web"]


@pytest.fixture
def toy_registered(monkeypatch):
    monkeypatch.setitem(registry.CHANNELS, TOY.name, TOY)  # the one registry line
    DELIVERED.clear()
    yield
    DELIVERED.clear()


def test_an_unregistered_channel_is_refused(db_url, redis_url, engine):
    with world(db_url, redis_url, engine) as w:
        r = w.client.post("/api/v1/alerts", json=alert_payload("Exercise", channels=CHANNELS),
                          headers=w.headers("operator"))
    assert r.status_code == 422 and "toy" in r.text


def test_a_registered_toy_channel_is_previewed_and_a_real_worker_fans_out_to_it(
    db_url, redis_url, engine, toy_registered, monkeypatch
):
    from celery.contrib.testing.worker import start_worker

    from broadcast.dispatch.planning import QUEUES
    from broadcast.runtime import active_channels
    from broadcast.settings import get_settings
    from broadcast.worker import celery

    monkeypatch.setenv("BROADCAST_DATABASE_URL", db_url)
    monkeypatch.setenv("BROADCAST_ENABLED_CHANNELS", '["sms", "toy", "web"]')
    get_settings.cache_clear()
    active_channels.cache_clear()  # the worker's channels as this test configures them, not an earlier test's
    try:
        with world(db_url, redis_url, engine, enabled_channels=CHANNELS) as w:
            on_toy = w.subscribers["palu"][:3]
            with engine.begin() as c:
                c.execute(sa.update(Subscriber).where(Subscriber.id.in_(on_toy)).values(channels=["toy", "sms"]))  # preferred: their one row is on toy
            r = w.client.post("/api/v1/alerts/preview", json=alert_payload("Exercise", channels=CHANNELS),
                              headers=w.headers("operator"))
            assert r.status_code == 200, r.text
            previews = {p["language"]: p["text"] for p in r.json()["channels"]["toy"]}
            assert previews == {"id-ID": "[LATIHAN] TOY: Banjir di Kota Palu. Segera mengungsi ke tempat yang "
                                         "lebih tinggi.",
                                "en-US": "[EXERCISE] TOY: Flooding in Palu City. Move to higher ground now."}

            created = w.client.post("/api/v1/alerts", json=alert_payload("Exercise", channels=CHANNELS),
                                    headers=w.headers("operator"))
            assert created.status_code == 201, created.text
            alert_id = created.json()["id"]
            assert w.client.post(f"/api/v1/alerts/{alert_id}/submit", headers=w.headers("operator")).status_code == 200
            with start_worker(celery, pool="solo", perform_ping_check=False, shutdown_timeout=30,
                              queues=list(QUEUES)):
                approved = w.client.post(f"/api/v1/alerts/{alert_id}/approve", headers=w.headers("approver"))
                assert approved.status_code == 202, approved.text
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline and len(DELIVERED) < len(on_toy):
                    time.sleep(0.2)
                deadline = time.monotonic() + 30  # the worker records the outcomes just after sending
                while time.monotonic() < deadline and _toy_states(engine, alert_id) != {"sent"}:
                    time.sleep(0.2)
    finally:
        get_settings.cache_clear()
        active_channels.cache_clear()
    with engine.connect() as c:
        rows = c.execute(sa.select(Delivery.subscriber_id, Delivery.state, Delivery.provider_id)
                         .where(Delivery.alert_id == alert_id, Delivery.channel == "toy")).all()
    assert sorted(r.subscriber_id for r in rows) == sorted(on_toy) and {r.state for r in rows} == {"sent"}
    assert sorted(r.provider_id for r in rows) == sorted(f"toy-{i}" for i in range(1, len(on_toy) + 1))
    assert len(DELIVERED) == len(on_toy)  # each toy subscriber once
    by_language = {language.split("-")[0]: text for language, text in previews.items()}  # "id-ID" → "id"
    assert all(m.text == by_language[m.language] for m in DELIVERED), [(m.language, m.text) for m in DELIVERED]


def _toy_states(engine, alert_id):
    with engine.connect() as c:
        return set(c.scalars(sa.select(Delivery.state).where(Delivery.alert_id == alert_id,
                                                             Delivery.channel == "toy")))

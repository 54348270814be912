"""Adding a channel takes its package and one registry line: the toy channel shows in previews and fan-out."""

import pytest
import sqlalchemy as sa

from broadcast.alerts import composer
from broadcast.alerts import service as alerts
from broadcast.alerts.schemas import AlertCreate
from broadcast.dispatch.claims import claim
from broadcast.dispatch.models import Delivery, OutboxMessage
from broadcast.dispatch.outcomes import record_results
from broadcast.dispatch.pacing import send_claimed
from broadcast.dispatch.plan import plan_alert
from broadcast.dispatch.wiring import channel_set
from broadcast.settings import Settings
from broadcast.subscribers.models import Subscriber
from channels import registry
from channels.outbox import Outbox
from tests.factories import alert_payload, make_subscribers, make_team
from tests.integration.toy_channel import TOY, ToyRenderer

pytestmark = pytest.mark.integration
BASE = "http://127.0.0.1:8000"


@pytest.fixture
def toy_registered(monkeypatch):
    monkeypatch.setitem(registry.CHANNELS, TOY.name, TOY)  # the one registry line


def test_a_registered_toy_channel_is_previewed_and_fanned_out(session, toy_registered):
    team = make_team(session)
    subs = make_subscribers(session)
    on_toy = subs["palu"][:2]
    for sid in on_toy:
        session.get(Subscriber, sid).channels = ["toy", "sms"]  # toy preferred: their one row is on toy
    session.commit()
    settings = Settings(environment="test", enabled_channels=["sms", "toy", "web"], public_base_url=BASE)
    built = channel_set(settings)
    assert isinstance(built.senders["toy"], Outbox) and isinstance(built.renderers["toy"], ToyRenderer)

    alert = alerts.create_alert(
        session, data=AlertCreate(**alert_payload("Exercise")), author=team["operator"], sender="t@x"
    )
    alert.channels = ["sms", "toy", "web"]
    session.flush()
    shown = composer.previews(session, alert=alert, public_base_url=BASE, renderers=built.renderers)
    toy_texts = [entry["text"] for entry in shown["channels"]["toy"]]
    assert toy_texts and all(t.startswith("[LATIHAN] TOY:") or t.startswith("[EXERCISE] TOY:") for t in toy_texts)

    alerts.submit_alert(session, alert_id=alert.id, actor=team["operator"])
    alerts.approve_alert(session, alert_id=alert.id, approver=team["approver"], production=True)
    session.commit()
    planned = plan_alert(session, alert_id=alert.id)
    session.commit()
    assert sorted(session.scalars(sa.select(Delivery.subscriber_id).where(Delivery.channel == "toy"))) == on_toy
    for ids in planned.values():
        batch = claim(session, delivery_ids=ids, lease_s=60, public_base_url=BASE)
        session.commit()
        record_results(session, sent=send_claimed(batch, channels=built.senders))
        session.commit()
    sent = session.scalars(sa.select(OutboxMessage.text).where(OutboxMessage.channel == "toy")).all()
    assert len(sent) == len(on_toy) and all("TOY:" in t for t in sent)
    assert set(session.scalars(sa.select(Delivery.state).where(Delivery.channel == "toy"))) == {"sent"}

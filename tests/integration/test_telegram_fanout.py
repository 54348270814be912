"""A Telegram subscriber and the agency channel get the alert through the fan-out and the real SDK."""

import pytest
import sqlalchemy as sa

from broadcast.alerts import service as alerts
from broadcast.alerts.schemas import AlertCreate
from broadcast.dispatch.claims import claim
from broadcast.dispatch.models import Delivery
from broadcast.dispatch.outcomes import record_results
from broadcast.dispatch.pacing import send_claimed
from broadcast.dispatch.plan import plan_alert
from broadcast.subscribers import service as subscribers
from channels.telegram.render import TelegramChannelRenderer, TelegramRenderer
from channels.telegram.sender import TelegramBot
from channels.telegram.settings import TelegramConfig
from tests.factories import alert_payload, make_subscribers, make_team
from tests.fakes.telegram import FakeTelegram

pytestmark = pytest.mark.integration
BASE = "http://127.0.0.1:8000"
TOKEN = "123456:TEST-TOKEN"


def test_fanout_reaches_the_telegram_chat_and_posts_once_to_the_agency_channel(session):
    team = make_team(session)
    make_subscribers(session)
    sub, _ = subscribers.register_by_telegram(session, chat_id=555001, admin_code="72.71", language="en")
    session.commit()
    data = AlertCreate(**alert_payload("Exercise", channels=["sms", "telegram", "telegram_channel", "web"]))
    alert = alerts.create_alert(session, data=data, author=team["operator"], sender="t@x")
    alerts.submit_alert(session, alert_id=alert.id, actor=team["operator"])
    alerts.approve_alert(session, alert_id=alert.id, approver=team["approver"], production=True)
    session.commit()
    planned = plan_alert(session, alert_id=alert.id)
    session.commit()
    assert len(planned["telegram"]) == 1 and len(planned["telegram_channel"]) == 1
    with FakeTelegram(TOKEN) as fake:
        config = TelegramConfig(bot_token=TOKEN, channel_chat_id="@bpbdpalu", api_base_url=fake.base_url)
        senders = {
            "telegram": TelegramBot(TelegramRenderer(), config=config),
            "telegram_channel": TelegramBot(TelegramChannelRenderer(), config=config, channel_post=True),
        }
        for name in senders:
            batch = claim(session, delivery_ids=planned[name], lease_s=60, public_base_url=BASE)
            session.commit()
            record_results(session, sent=send_claimed(batch, channels=senders))
            session.commit()
        sent = fake.sent
    assert sorted(m["chat_id"] for m in sent) == ["555001", "@bpbdpalu"]
    private = next(m for m in sent if m["chat_id"] == "555001")
    assert private["text"].startswith("<b>[EXERCISE]") and private["parse_mode"] == "HTML"
    states = session.execute(sa.select(Delivery.channel, Delivery.state).where(Delivery.channel.like("telegram%")))
    assert {c: s for c, s in states} == {"telegram": "sent", "telegram_channel": "sent"}
    assert sub.id is not None

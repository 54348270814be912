"""One person, many channels, one warning (issue 21): each person gets an alert on their preferred channel, and
their next channel only when that one failed or was not delivered in time; a real Celery worker runs the
fan-out, the fallback countdowns and the sends (Telegram through python-telegram-bot against a local fake)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa

from broadcast.alerts import service as alerts
from broadcast.alerts.schemas import AlertCreate
from broadcast.db import session_scope, utcnow
from broadcast.dispatch import fallback, tasks
from broadcast.dispatch.models import Delivery, OutboxMessage
from broadcast.dispatch.planning import QUEUES
from broadcast.dispatch.progress import is_settled, people_progress, progress
from broadcast.dispatch.sweep import sweep
from broadcast.settings import get_settings
from broadcast.subscribers import service as subscribers
from broadcast.subscribers.models import Subscriber
from channels import registry
from channels.base import Channel
from channels.outbox import Outbox
from channels.telegram.render import TelegramRenderer
from channels.telegram.sender import TelegramBot
from channels.telegram.settings import TelegramConfig
from tests.factories import alert_payload, make_team
from tests.fakes.telegram import FakeTelegram
from tests.integration.toy_channel import TOY, ToyRenderer

pytestmark = pytest.mark.integration
BASE = "http://127.0.0.1:8000"
TOKEN = "123456:TEST-TOKEN"


def _person(s, n: int, channels: list[str], *, chat: int | None = None, all_channels: bool = False) -> Subscriber:
    sub = subscribers.add_subscriber(s, phone=f"+62812991{n:05d}", admin_code="72.71")
    sub.channels, sub.telegram_chat_id, sub.all_channels = channels, chat, all_channels
    s.flush()
    return sub


def _approve(s, channels: list[str]) -> int:
    team = make_team(s)
    alert = alerts.create_alert(s, data=AlertCreate(**alert_payload("Exercise")), author=team["operator"], sender="t@x")
    alert.channels = channels
    s.flush()
    alerts.submit_alert(s, alert_id=alert.id, actor=team["operator"])
    alerts.approve_alert(s, alert_id=alert.id, approver=team["approver"], production=True)
    return alert.id


@pytest.fixture
def worker(db_url, redis_url, monkeypatch) -> Iterator[Callable[[dict[str, Channel], int], object]]:
    """A real Celery worker (solo pool, in this process) sending through the given channels."""
    from celery.contrib.testing.worker import start_worker

    from broadcast.worker import celery

    started = []

    def start(senders: dict[str, Channel], fallback_s: int) -> object:
        monkeypatch.setenv("BROADCAST_DATABASE_URL", db_url)
        monkeypatch.setenv("BROADCAST_DISPATCH_FALLBACK_S", str(fallback_s))
        get_settings.cache_clear()
        monkeypatch.setattr(tasks, "active_channels", lambda: senders)
        ctx = start_worker(celery, pool="solo", perform_ping_check=False, shutdown_timeout=30, queues=list(QUEUES))
        ctx.__enter__()
        started.append(ctx)
        return ctx

    yield start
    for ctx in started:
        ctx.__exit__(None, None, None)
    get_settings.cache_clear()


def _wait(engine, alert_id: int, done: Callable[[sa.orm.Session], bool], *, within_s: float = 60) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        with session_scope(engine) as s:
            if done(s):
                return
        time.sleep(0.2)
    raise AssertionError(f"alert {alert_id}: not done within {within_s} s")


def _settled(alert_id: int) -> Callable[[sa.orm.Session], bool]:
    return lambda s: is_settled(s, alert_id=alert_id, rows=progress(s, alert_id=alert_id))


def _sms_to(engine) -> list[str]:
    with session_scope(engine) as s:
        return sorted(s.scalars(sa.select(OutboxMessage.recipient).where(OutboxMessage.channel == "sms")))


def test_a_failed_telegram_gets_one_sms_a_sent_one_none_and_all_channels_both(engine, worker):
    with session_scope(engine) as s:
        ok = _person(s, 1, ["telegram", "sms"], chat=9001)
        blocked = _person(s, 2, ["telegram", "sms"], chat=9002)
        both = _person(s, 3, ["telegram", "sms"], chat=9003, all_channels=True)
        sms_only = _person(s, 4, ["sms"])
        no_chat = _person(s, 5, ["telegram", "sms"])  # never started the bot: SMS is the first it can reach
        phones = {p.id: p.phone for p in (ok, blocked, both, sms_only, no_chat)}
        alert_id = _approve(s, ["sms", "telegram", "web"])
    with FakeTelegram(TOKEN) as fake:
        fake.block_chat(9002)  # the person blocked the bot: 403, the message fails for good
        config = TelegramConfig(bot_token=TOKEN, channel_chat_id="@bpbdpalu", api_base_url=fake.base_url)
        senders = {
            "telegram": TelegramBot(TelegramRenderer(), config=config),
            "sms": registry.build_channel("sms", mode="outbox", public_base_url=BASE),
            "web": registry.build_channel("web", mode="live", public_base_url=BASE),
        }
        worker(senders, 60)
        tasks.fanout_alert.delay(alert_id)
        _wait(engine, alert_id, _settled(alert_id))
        telegram_chats = sorted(m["chat_id"] for m in fake.sent)

    assert telegram_chats == ["9001", "9003"]
    # Exactly one SMS each for the blocked chat, the person who asked for all, the SMS-only and the chat-less one;
    # none for the person whose Telegram went.
    assert _sms_to(engine) == sorted([phones[blocked.id], phones[both.id], phones[sms_only.id], phones[no_chat.id]])
    with session_scope(engine) as s:
        rows = s.execute(sa.select(Delivery.subscriber_id, Delivery.channel, Delivery.state).where(
            Delivery.alert_id == alert_id, Delivery.subscriber_id.is_not(None))).all()
        per_person = {(sid, ch): st for sid, ch, st in rows}
        assert per_person == {
            (ok.id, "telegram"): "sent",
            (blocked.id, "telegram"): "failed",
            (blocked.id, "sms"): "sent",
            (both.id, "telegram"): "sent",
            (both.id, "sms"): "sent",
            (sms_only.id, "sms"): "sent",
            (no_chat.id, "sms"): "sent",
        }
        # Progress counts people: seven personal rows, five people, all reached.
        people = people_progress(s, alert_id=alert_id)
        assert (people.people, people.reached, people.failed, people.waiting) == (5, 5, 0, 0)
        assert sum(r.total for r in progress(s, alert_id=alert_id) if r.channel != "web") == len(rows) == 7
        # Running the fallback again (a redelivered task, a sweep) plans nothing more.
        ids = [i for i, in s.execute(sa.select(Delivery.id).where(Delivery.alert_id == alert_id))]
        assert fallback.fall_back(s, delivery_ids=ids, now=utcnow() + timedelta(hours=1)) == {}
    assert len(_sms_to(engine)) == 4


class LivePager(Outbox):
    """A live channel whose provider reports delivery (the toy spec keeps delivery_receipts=True), as WhatsApp's
    does: it accepts every message; the receipt comes later, or never."""

    mode = "live"


def test_not_delivered_in_time_falls_back_and_a_receipt_in_time_does_not(engine, worker, monkeypatch):
    monkeypatch.setitem(registry.CHANNELS, TOY.name, TOY)
    assert TOY.delivery_receipts
    with session_scope(engine) as s:
        silent = _person(s, 11, ["toy", "sms"])
        receipted = _person(s, 12, ["toy", "sms"])
        phones = {silent.id: silent.phone, receipted.id: receipted.phone}
        alert_id = _approve(s, ["sms", "toy", "web"])
    senders = {
        "toy": LivePager(ToyRenderer()),
        "sms": registry.build_channel("sms", mode="outbox", public_base_url=BASE),
        "web": registry.build_channel("web", mode="live", public_base_url=BASE),
    }
    worker(senders, 3)
    tasks.fanout_alert.delay(alert_id)

    def toy_sent(s) -> bool:
        states = s.scalars(sa.select(Delivery.state).where(Delivery.alert_id == alert_id, Delivery.channel == "toy"))
        return sorted(states) == ["sent", "sent"]

    _wait(engine, alert_id, toy_sent)
    with session_scope(engine) as s:  # the provider's receipt for one of them, as a status callback records it
        row = s.scalar(sa.select(Delivery).where(Delivery.subscriber_id == receipted.id, Delivery.channel == "toy"))
        assert row.fallback_due is not None
        row.state = "delivered"
        fallback.note_status(row, now=utcnow())
    _wait(engine, alert_id, _settled(alert_id))
    with session_scope(engine) as s:
        seen = s.execute(sa.select(Delivery.id, Delivery.subscriber_id, Delivery.channel, Delivery.state,
                                   Delivery.fallback_due).where(Delivery.alert_id == alert_id)).all()
    assert _sms_to(engine) == [phones[silent.id]], seen
    with session_scope(engine) as s:
        people = people_progress(s, alert_id=alert_id)
        assert (people.people, people.reached, people.delivered) == (2, 2, 1)


def test_the_sweep_finds_a_fallback_whose_countdown_was_lost(engine):
    with session_scope(engine) as s:
        person = _person(s, 21, ["telegram", "sms"], chat=9021)
        alert_id = _approve(s, ["sms", "telegram"])
    from broadcast.dispatch.plan import plan_alert

    with session_scope(engine) as s:
        planned = plan_alert(s, alert_id=alert_id)
        assert list(planned) == ["telegram"]
        # The Telegram send failed and its worker died before the fallback task ran.
        s.execute(sa.update(Delivery).where(Delivery.id.in_(planned["telegram"])).values(
            state="failed", fallback_due=utcnow() - timedelta(minutes=5)))
    with session_scope(engine) as s:
        plan = sweep(s, stale_s=60)
    assert plan.fallbacks == [planned["telegram"]]
    with session_scope(engine) as s:
        moved = fallback.fall_back(s, delivery_ids=plan.fallbacks[0], now=utcnow())
    assert list(moved) == [alert_id] and list(moved[alert_id]) == ["sms"]
    with session_scope(engine) as s:
        assert fallback.fall_back(s, delivery_ids=plan.fallbacks[0], now=utcnow()) == {}
        assert sweep(s, stale_s=60).fallbacks == []
        rows = s.execute(sa.select(Delivery.channel).where(Delivery.subscriber_id == person.id)).all()
    assert sorted(r.channel for r in rows) == ["sms", "telegram"]


def test_a_paced_channel_is_planned_only_for_whom_it_can_reach_by_the_send_deadline(engine, monkeypatch):
    """Planning gives a slow channel (a WhatsApp sender at 8/s) only the people it can send to within the deadline;
    the rest go straight to their next channel, and only rows with a next channel get the deadline."""
    monkeypatch.setitem(registry.CHANNELS, TOY.name, TOY)
    with session_scope(engine) as s:
        people = [_person(s, 30 + n, ["toy", "sms"]) for n in range(5)]
        alert_id = _approve(s, ["sms", "toy"])
    from broadcast.dispatch.plan import plan_alert_stream

    with session_scope(engine) as s:
        before = utcnow()
        parts = list(plan_alert_stream(s, alert_id=alert_id, room={"toy": 2}, send_deadline_s=30))
        rows = s.execute(
            sa.select(Delivery.subscriber_id, Delivery.channel, Delivery.fallback_due).where(
                Delivery.alert_id == alert_id
            )
        ).all()
    assert sum(len(ids) for part in parts for ids in part.values()) == 5
    by_channel = {ch: sorted(r.subscriber_id for r in rows if r.channel == ch) for ch in ("toy", "sms")}
    assert by_channel == {"toy": [p.id for p in people[:2]], "sms": [p.id for p in people[2:]]}
    for r in rows:
        if r.channel == "toy":  # due for the fallback step at the deadline: it moves on if still unsent then
            assert timedelta(seconds=29) <= r.fallback_due.replace(tzinfo=before.tzinfo) - before <= timedelta(seconds=35)
        else:  # SMS is their last channel: nothing to fall back to
            assert r.fallback_due is None


class StuckPager(LivePager):
    """A live channel whose provider is down (every request a transient error): its rows wait for retries."""

    calls: list[str]

    def send(self, message):
        from channels.base import ChannelUnavailable

        self.calls.append(message.recipient)
        raise ChannelUnavailable("503 from the provider")


def test_a_row_still_unsent_at_the_send_deadline_gives_way_to_one_sms(engine, worker, monkeypatch):
    monkeypatch.setitem(registry.CHANNELS, TOY.name, TOY)
    monkeypatch.setenv("BROADCAST_DISPATCH_SEND_DEADLINE_S", "2")
    with session_scope(engine) as s:
        person = _person(s, 41, ["toy", "sms"])
        phone = person.phone
        alert_id = _approve(s, ["sms", "toy", "web"])
    stuck = StuckPager(ToyRenderer())
    stuck.calls = []
    senders = {
        "toy": stuck,
        "sms": registry.build_channel("sms", mode="outbox", public_base_url=BASE),
        "web": registry.build_channel("web", mode="live", public_base_url=BASE),
    }
    worker(senders, 60)
    tasks.fanout_alert.delay(alert_id)
    _wait(engine, alert_id, _settled(alert_id), within_s=30)
    assert _sms_to(engine) == [phone]  # exactly one SMS
    with session_scope(engine) as s:
        toy = s.execute(sa.select(Delivery.state, Delivery.error, Delivery.fallback_due).where(
            Delivery.alert_id == alert_id, Delivery.channel == "toy")).one()
        assert (toy.state, toy.error, toy.fallback_due) == ("skipped", fallback.DEADLINE_PASSED, None)
        people = people_progress(s, alert_id=alert_id)
        assert (people.people, people.reached, people.waiting) == (1, 1, 0)
    tried = len(stuck.calls)
    assert tried >= 1
    time.sleep(4)  # the retry queued before the deadline finds the row skipped: the provider is not asked again
    assert len(stuck.calls) == tried

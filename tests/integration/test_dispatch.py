from collections import Counter
from datetime import timedelta

import pytest
import sqlalchemy as sa

from broadcast.alerts import service as alerts
from broadcast.alerts.schemas import AlertCreate
from broadcast.db import utcnow
from broadcast.dispatch.claims import claim
from broadcast.dispatch.models import Delivery, OutboxMessage
from broadcast.dispatch.outcomes import record_results
from broadcast.dispatch.pacing import Sent, send_claimed
from broadcast.dispatch.plan import plan_alert
from broadcast.dispatch.sweep import sweep
from broadcast.subscribers.models import Subscriber
from channels.registry import build_channels
from tests.factories import alert_payload, make_subscribers, make_team

pytestmark = pytest.mark.integration
BASE = "http://127.0.0.1:8000"


@pytest.fixture
def world(session):
    team = make_team(session)
    subs = make_subscribers(session)
    session.commit()
    return team, subs


def _approved(session, team, status="Actual"):
    alert = alerts.create_alert(session, data=AlertCreate(**alert_payload(status)), author=team["operator"],
                                sender="t@x")
    alerts.submit_alert(session, alert_id=alert.id, actor=team["operator"])
    alerts.approve_alert(session, alert_id=alert.id, approver=team["approver"], production=True)
    session.commit()
    return alert


def _channels(handed: Counter | None = None):
    """The outbox channels; with `handed`, every message each hands to its provider (the outbox's `send`, where a
    live channel makes its request) is counted per (channel, recipient), so a second send cannot hide behind
    the outbox table's ignored duplicates."""
    channels = build_channels(["sms", "social", "web"], modes={}, public_base_url=BASE)
    if handed is not None:
        for name, channel in channels.items():
            def send(message, _send=channel.send, _name=name):
                handed[(_name, message.recipient)] += 1
                return _send(message)

            channel.send = send
    return channels


def _deliver_all(session, planned, handed: Counter | None = None):
    for ids in planned.values():
        batch = claim(session, delivery_ids=ids, lease_s=60, public_base_url=BASE)
        session.commit()
        sent = send_claimed(batch, channels=_channels(handed))
        record_results(session, sent=sent)
        session.commit()


def test_plan_targets_exactly_the_area_and_is_idempotent(session, world):
    team, subs = world
    alert = _approved(session, team)
    planned = plan_alert(session, alert_id=alert.id)
    session.commit()
    assert alert.state == "published" and alert.published_at is not None
    sms_subs = set(session.scalars(sa.select(Delivery.subscriber_id).where(Delivery.channel == "sms")))
    assert sms_subs == set(subs["palu"])  # not Donggala next door, not Grobogan
    assert len(planned["social"]) == 1 and len(planned["web"]) == 1
    again = plan_alert(session, alert_id=alert.id)
    session.commit()
    assert again == planned
    assert session.scalar(sa.select(sa.func.count()).select_from(Delivery)) == len(subs["palu"]) + 2


def test_stopped_subscribers_get_nothing(session, world):
    team, subs = world
    stopped = session.get(Subscriber, subs["palu"][0])
    stopped.active = False
    session.commit()
    alert = _approved(session, team)
    planned = plan_alert(session, alert_id=alert.id)
    session.commit()
    assert len(planned["sms"]) == len(subs["palu"]) - 1


def test_deliver_writes_outbox_once_and_redelivery_is_harmless(session, world):
    team, subs = world
    alert = _approved(session, team, status="Exercise")
    planned = plan_alert(session, alert_id=alert.id)
    session.commit()
    handed: Counter = Counter()
    _deliver_all(session, planned, handed)
    first = Counter(handed)
    _deliver_all(session, planned, handed)  # a redelivered task claims nothing
    assert handed == first  # the redelivery handed nothing to any provider
    # Every planned row (each SMS, the X post, the web page) reached its provider exactly once.
    assert sum(handed.values()) == sum(len(ids) for ids in planned.values()) and set(handed.values()) == {1}
    # Each row was claimed once: a second claim of a sent row would show here even in outbox mode.
    assert set(session.scalars(sa.select(Delivery.attempts))) == {1}
    rows = session.scalars(sa.select(OutboxMessage).order_by(OutboxMessage.id)).all()
    assert len(rows) == len(subs["palu"]) + 1  # SMS plus one X post; the web page is not an outbox message
    assert all(r.text.startswith(("[LATIHAN]", "[EXERCISE]")) for r in rows)
    english = [r for r in rows if r.channel == "sms" and "Flooding" in r.text]
    assert len(english) == 1
    states = set(session.scalars(sa.select(Delivery.state)))
    assert states == {"sent"}


def test_second_claim_of_the_same_rows_gets_nothing(session, world):
    team, _ = world
    alert = _approved(session, team)
    planned = plan_alert(session, alert_id=alert.id)
    session.commit()
    first = claim(session, delivery_ids=planned["sms"], lease_s=60, public_base_url=BASE)
    session.commit()
    second = claim(session, delivery_ids=planned["sms"], lease_s=60, public_base_url=BASE)
    session.commit()
    assert len(first.items) == len(planned["sms"]) and second.items == []


def test_expired_alert_rows_are_skipped_not_sent(session, world):
    team, _ = world
    alert = _approved(session, team)
    planned = plan_alert(session, alert_id=alert.id)
    alert.expires = utcnow() - timedelta(seconds=1)
    session.commit()
    batch = claim(session, delivery_ids=planned["sms"], lease_s=60, public_base_url=BASE)
    session.commit()
    assert batch.items == []
    assert set(session.scalars(sa.select(Delivery.state).where(Delivery.channel == "sms"))) == {"skipped"}


def test_sweep_finds_expired_leases_and_unplanned_approvals(session, world):
    team, _ = world
    alert = _approved(session, team)
    alert.approved_at = utcnow() - timedelta(minutes=5)
    session.commit()
    plan = sweep(session)
    assert plan.fanout_alert_ids == [alert.id]
    planned = plan_alert(session, alert_id=alert.id)
    session.commit()
    claim(session, delivery_ids=planned["sms"], lease_s=-1, public_base_url=BASE)  # a worker died
    session.commit()
    plan = sweep(session)
    session.commit()
    assert sorted(sum(plan.batches, [])) == sorted(planned["sms"])
    # The swept rows reach each recipient once, however often the sweep's batches are delivered.
    handed: Counter = Counter()
    for _ in range(2):
        _deliver_all(session, {"sms": sum(plan.batches, [])}, handed)
    phones = set(session.scalars(sa.select(Subscriber.phone).join(Delivery, Delivery.subscriber_id == Subscriber.id)))
    assert handed == Counter({("sms", p): 1 for p in phones})
    assert not sweep(session).batches


def test_a_timed_out_send_is_in_doubt_at_its_next_claim_and_a_clean_failure_is_not(session, world):
    from channels.base import Outcome, SendResult

    team, _ = world
    alert = _approved(session, team)
    planned = plan_alert(session, alert_id=alert.id)
    session.commit()
    ids = planned["sms"][:2]
    batch = claim(session, delivery_ids=ids, lease_s=60, public_base_url=BASE)
    session.commit()
    timed_out, refused = batch.items
    sent = [
        Sent(timed_out, SendResult(timed_out.recipient.key, Outcome.RETRY, error="timeout", in_doubt=True),
                     "", "live"),
        Sent(refused, SendResult(refused.recipient.key, Outcome.RETRY, error="HTTP 503"), "", "live"),
    ]
    assert sorted(record_results(session, sent=sent)) == sorted(ids)
    session.commit()
    again = claim(session, delivery_ids=ids, lease_s=60, public_base_url=BASE)
    session.commit()
    doubt = {i.delivery_id: i.in_doubt_since for i in again.items}
    assert doubt[timed_out.delivery_id] is not None  # the provider's list is checked before sending again
    assert doubt[refused.delivery_id] is None  # a clean 503: Twilio has nothing, send again at once


def test_subscriber_pages_cover_everyone_once_in_id_order(session, world):
    from broadcast.subscribers import targeting

    pages = list(targeting.iter_subscribers(session, first=1, chunk_size=2))
    assert [p.size for p in pages[:2]] == [1, 2]
    paged = [int(i) for p in pages for i in p.ids]
    assert paged == [int(i) for i in targeting.load_subscribers(session).ids]


def _age(session, alert_id, *, minutes):
    """Every row of the alert (sms, social, web) last touched `minutes` ago."""
    when = utcnow() - timedelta(minutes=minutes)
    session.execute(sa.update(Delivery).where(Delivery.alert_id == alert_id).values(updated_at=when))
    session.commit()


def test_sweep_leaves_the_pending_rows_of_a_fanout_still_moving_in_the_queue(session, world):
    team, _ = world
    alert = _approved(session, team)
    ids = plan_alert(session, alert_id=alert.id)["sms"]
    session.commit()
    _age(session, alert.id, minutes=5)  # planned long ago; their batches still wait behind others in the queue
    claim(session, delivery_ids=ids[:1], lease_s=60, public_base_url=BASE)  # ...while one is sent now
    session.commit()
    plan = sweep(session, stale_s=60)
    session.commit()
    assert plan.batches == []


def test_sweep_counts_a_row_held_back_for_a_rate_limit_as_movement(session, world):
    from channels.base import Outcome, SendResult

    team, _ = world
    alert = _approved(session, team)
    ids = plan_alert(session, alert_id=alert.id)["sms"]
    session.commit()
    _age(session, alert.id, minutes=5)
    batch = claim(session, delivery_ids=ids[:1], lease_s=60, public_base_url=BASE)
    session.commit()
    wait = SendResult(batch.items[0].recipient.key, Outcome.RETRY, error="rate limit", retry_after=30)
    record_results(session, sent=[Sent(batch.items[0], wait, "", "live", held=True)])
    session.commit()
    assert session.get(Delivery, ids[0]).state == "pending"
    assert sweep(session, stale_s=60).batches == []  # the held row is pending again, touched just now
    session.commit()


def test_sweep_requeues_the_pending_rows_of_a_stalled_fanout_once_per_stale_period(session, world):
    team, _ = world
    alert = _approved(session, team)
    ids = plan_alert(session, alert_id=alert.id)["sms"]
    session.commit()
    claim(session, delivery_ids=ids[:1], lease_s=60, public_base_url=BASE)
    session.commit()
    _age(session, alert.id, minutes=5)  # the last movement was 5 minutes ago: the rest's tasks were lost
    pending = set(session.scalars(sa.select(Delivery.id).where(Delivery.alert_id == alert.id, Delivery.state == "pending")))
    plan = sweep(session, stale_s=60)
    session.commit()
    assert set(ids[1:]) <= pending == set(sum(plan.batches, []))
    assert sweep(session, stale_s=60).batches == []  # not again on the next sweep
    session.commit()


def test_sweep_requeues_expired_leases_even_while_the_fanout_moves(session, world):
    team, _ = world
    alert = _approved(session, team)
    ids = plan_alert(session, alert_id=alert.id)["sms"]
    session.commit()
    _age(session, alert.id, minutes=5)
    claim(session, delivery_ids=ids[:2], lease_s=-1, public_base_url=BASE)  # a worker died just now
    session.commit()
    plan = sweep(session, stale_s=60)
    session.commit()
    assert sorted(sum(plan.batches, [])) == sorted(ids[:2])

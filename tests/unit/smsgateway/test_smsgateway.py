"""The SIM gateway channel through the real `android-sms-gateway` client against the local fake gateway; its
signature, replay window, event parsing and coordinates in SMS text."""

import time
from datetime import UTC, datetime, timedelta

import pytest

from broadcast.dispatch.wiring import channel_set
from broadcast.settings import Settings
from channels.base import OutboundMessage, Outcome
from channels.outbox import Outbox
from channels.registry import CHANNELS
from channels.sms.inbound import DeliveryState
from channels.smsgateway.channel import GatewaySmsRenderer
from channels.smsgateway.inbound import (
    InvalidEvent,
    parse_event,
    parse_inbound,
    parse_received,
    parse_status,
    sign,
    split_location,
    timestamp_fresh,
    verify_signature,
)
from channels.smsgateway.sender import SimGateway, message_id
from channels.smsgateway.settings import SmsGatewayConfig, SmsGatewaySettings, window_bucket
from tests.fakes.smsgateway import FakeSmsGateway

CITIZEN = "+6281377712345"


@pytest.fixture
def fake():
    with FakeSmsGateway() as f:
        yield f


def gateway(fake, **kw) -> SimGateway:
    config = SmsGatewayConfig(base_url=fake.base_url, username=fake.username, password=fake.password, **kw)
    return SimGateway(GatewaySmsRenderer(), config=config)


def msg(ref: str = "101", text: str = "PERINGATAN BANJIR Kota Palu. Segera mengungsi.", to: str = CITIZEN):
    return OutboundMessage(to, text, ref)


def test_send_through_the_client_returns_the_id_we_chose_and_delivery_states_follow(fake):
    [result] = gateway(fake).send_many([msg()])
    assert result.outcome is Outcome.SENT and result.provider_id == message_id(msg())
    assert result.provider_id.startswith("101-") and fake.state_of(result.provider_id) == "Pending"
    [sent] = fake.sent
    assert (sent["phone"], sent["text"]) == (CITIZEN, msg().text)
    events = [parse_status(parse_event(w.event)) for w in fake.process()]
    assert [(e.status, e.state, e.delivery_id) for e in events] == [
        ("sent", DeliveryState.IN_PROGRESS, "101"), ("delivered", DeliveryState.DELIVERED, "101")]


def test_phone_limits_are_declared_and_a_message_over_them_is_retried_not_failed(fake):
    fake.max_count = 2
    channel = gateway(fake, android_max_count=2)
    buckets, cost = channel.rate_buckets(msg())
    android, day = buckets
    # Never more than the window's count in any window: refill over the window plus the burst.
    assert android.rate * 1800 + android.burst <= 2 and day.rate * 86_400 + day.burst <= 300
    assert cost == 1 and channel.rate_buckets(msg(text="x" * 200))[1] == 2  # Android counts parts
    results = channel.send_many([msg("1"), msg("2"), msg("3")])
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT, Outcome.RETRY]
    assert "RESULT_ERROR_LIMIT_EXCEEDED" in (results[2].error or "") and results[2].retry_after
    assert fake.violations == 1 and len(fake.sent) == 2


def test_window_bucket_never_exceeds_its_count():
    for count, window in ((30, 1800), (2, 60), (300, 86_400), (5, 60)):
        b = window_bucket("k", count, window)
        assert b.rate * window + b.burst <= count and b.burst >= 1


@pytest.mark.parametrize(("status", "outcome"), [(503, Outcome.RETRY), (500, Outcome.RETRY), (429, Outcome.RETRY),
                                                 (401, Outcome.RETRY)])
def test_server_errors_are_retried(fake, status, outcome):
    fake.fail_next(1, status=status)
    [result] = gateway(fake).send_many([msg()])
    assert result.outcome is outcome and str(status) in (result.error or "")
    assert not fake.sent


def test_a_number_the_gateway_refuses_fails_and_the_rest_of_the_batch_goes(fake):
    results = gateway(fake).send_many([msg("1", to="0812"), msg("2")])
    assert [r.outcome for r in results] == [Outcome.FAILED, Outcome.SENT]
    assert "400" in (results[0].error or "")


def test_a_timeout_is_in_doubt_and_the_retry_finds_the_message_instead_of_sending_it_twice(fake):
    fake.hang_next(1, seconds=1.5)
    channel = gateway(fake, timeout_s=0.5)
    [first] = channel.send_many([msg()])
    assert first.outcome is Outcome.RETRY and first.in_doubt
    time.sleep(1.5)  # the phone took it late
    assert channel.reconcile(msg(), since=datetime.now(UTC) - timedelta(minutes=1)) == message_id(msg())
    [again] = channel.send_many([msg()])  # sent again anyway: the gateway knows the id (409), nothing goes twice
    assert again.outcome is Outcome.SENT and len(fake.sent) == 1
    assert channel.reconcile(msg("999"), since=datetime.now(UTC)) is None


def test_unreachable_gateway_is_retried():
    config = SmsGatewayConfig(base_url="http://127.0.0.1:9", password="x", timeout_s=0.5)
    [result] = SimGateway(GatewaySmsRenderer(), config=config).send_many([msg()])
    assert result.outcome is Outcome.RETRY and "unreachable" in (result.error or "")


def test_the_registry_builds_outbox_outside_production_and_live_in_production(fake):
    assert "smsgateway" in CHANNELS and CHANNELS["smsgateway"].subscriber_address == "phone"
    gw = {"base_url": fake.base_url, "username": fake.username, "password": fake.password}
    test = Settings(environment="test", enabled_channels=["smsgateway"], smsgateway=gw)
    assert isinstance(channel_set(test).senders["smsgateway"], Outbox)
    prod = Settings(environment="production", secret_key="a-real-production-secret-42",
                    database_url="postgresql://127.0.0.1/none",
                    enabled_channels=["smsgateway"], smsgateway=gw)
    live = channel_set(prod).senders["smsgateway"]
    assert isinstance(live, SimGateway) and live.send(msg()) == message_id(msg())
    with pytest.raises(ValueError):
        SmsGatewaySettings(base_url="ftp://phone")


def test_signature_is_hmac_of_body_and_timestamp_and_forgeries_fail():
    body, stamp = b'{"id":"e1","event":"sms:received","payload":{}}', "1765100000"
    good = sign("key", body, stamp)
    assert verify_signature("key", raw_body=body, timestamp=stamp, signature=good)
    assert verify_signature("key", raw_body=body, timestamp=stamp, signature=good.upper())
    for key, b, t, s in (("", body, stamp, good), ("other", body, stamp, good), ("key", body + b" ", stamp, good),
                         ("key", body, "1765100001", good), ("key", body, None, good), ("key", body, stamp, None),
                         ("key", body, stamp, "")):
        assert not verify_signature(key, raw_body=b, timestamp=t, signature=s)


def test_replay_window():
    now = 1_765_100_000.0
    assert timestamp_fresh("1765100000", now=now, window_s=300)
    assert timestamp_fresh("1765099700", now=now, window_s=300)
    for stale in ("1765099699", "1765100301", "-1", "17651e5", "", "1" * 20):
        assert not timestamp_fresh(stale, now=now, window_s=300), stale


def test_received_event_parsed_by_the_library_with_coordinates_taken_out(fake):
    event = parse_event(fake.received(CITIZEN, "LAPOR banjir https://maps.google.com/?q=-0.8917,119.8707").event)
    sms = parse_received(event)
    assert (sms.phone, sms.text, sms.location) == (CITIZEN, "LAPOR banjir", (119.8707, -0.8917))
    assert sms.raw["From"] == CITIZEN and sms.raw["id"] == event.id
    inbound = parse_inbound(fake.received(CITIZEN, "CEK 7KQ2MX").event)
    assert inbound is not None and inbound.source == "smsgateway" and inbound.text == "CEK 7KQ2MX"
    assert parse_inbound(fake.webhook("system:ping", {"health": {}}).event) is None
    with pytest.raises(InvalidEvent):
        parse_event({"event": "sms:received", "payload": {}})
    with pytest.raises(InvalidEvent):
        parse_received(parse_event({"id": "e", "event": "sms:received", "payload": {"message": "x"}}))


@pytest.mark.parametrize(("text", "expected"), [
    ("LAPOR banjir di -0.8917, 119.8707 tolong", ("LAPOR banjir di tolong", (119.8707, -0.8917))),
    ("LAPOR pohon tumbang 119.8707 -0.8917", ("LAPOR pohon tumbang", (119.8707, -0.8917))),
    ("lapor geo:-6.21,106.816666", ("lapor", (106.816666, -6.21))),
    ("LAPOR https://www.google.com/maps/@-0.90,119.87,15z air naik", ("LAPOR air naik", (119.87, -0.90))),
    ("-0.8917,119.8707", ("", (119.8707, -0.8917))),
    ("LAPOR banjir 2.5 meter di Jl. 5, 12", ("LAPOR banjir 2.5 meter di Jl. 5, 12", None)),
    ("LAPOR 48.85, 2.35 Paris", ("LAPOR 48.85, 2.35 Paris", None)),  # not in Indonesia: left as text
])
def test_coordinates_in_sms_text(text, expected):
    assert split_location(text) == expected

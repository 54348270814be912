"""Twilio's limits as token buckets: the account cap on every message, plus the sender number's (long code or
short code) or the Messaging Service's own, each made window safe."""

import math

import pytest
from pydantic import ValidationError

from broadcast.dispatch.wiring import channel_config
from broadcast.settings import Settings, TwilioSettings
from channels.base import OutboundMessage, window_safe
from channels.registry import build_channel
from channels.sms import SenderStrategy, TwilioConfig, TwilioSms

ACCOUNT = "AC" + "1" * 32
SERVICE = "MG" + "a" * 32
LONG = ("+6281100000001", "+6281100000002")


def sms(**kw) -> TwilioSms:
    config = TwilioConfig(account_sid=ACCOUNT, auth_token="t", **kw)
    channel = build_channel("sms", mode="live", public_base_url="http://x", config=config)
    assert isinstance(channel, TwilioSms)
    return channel


def msg(to: str = "+6281234567890", ref: str = "7") -> OutboundMessage:
    return OutboundMessage(to, "Banjir", ref)


def buckets_of(channel: TwilioSms, message: OutboundMessage) -> dict[str, tuple[float, float]]:
    buckets, cost = channel.rate_buckets(message)
    assert cost == 1
    return {b.key: (b.rate, b.burst) for b in buckets}


def test_a_long_code_is_limited_to_one_a_second_under_the_account_cap():
    channel = sms(sender_numbers=LONG)
    got = buckets_of(channel, msg())
    sender = channel.sender_for(msg())
    assert got == {f"sms:account:{ACCOUNT}": window_safe(2000), f"sms:sender:{sender}": window_safe(1)}


def test_a_short_code_gets_the_short_code_rate():
    channel = sms(sender_numbers=("76543",), short_code_rate=50, rate_per_second=500)
    assert buckets_of(channel, msg()) == {
        f"sms:account:{ACCOUNT}": window_safe(500),
        "sms:sender:76543": window_safe(50),
    }


@pytest.mark.parametrize(
    "sender, short",
    [("123", True), ("12345678", True), ("12", False), ("123456789", False), ("+62811", False), ("BPBD", False)],
)
def test_what_counts_as_a_short_code(sender, short):
    channel = sms(sender_numbers=(sender,), long_code_rate=2, short_code_rate=300)
    assert buckets_of(channel, msg())[f"sms:sender:{sender}"] == window_safe(300 if short else 2)


def test_a_messaging_service_alone_gets_the_service_rate():
    channel = sms(messaging_service_sid=SERVICE, messaging_service_rate=40)
    assert buckets_of(channel, msg()) == {
        f"sms:account:{ACCOUNT}": window_safe(2000),
        f"sms:service:{SERVICE}": window_safe(40),
    }


def test_a_pool_number_with_a_service_is_limited_as_that_number():
    channel = sms(messaging_service_sid=SERVICE, sender_numbers=LONG)
    assert set(buckets_of(channel, msg())) == {f"sms:account:{ACCOUNT}", f"sms:sender:{channel.sender_for(msg())}"}


def test_round_robin_is_decided_by_the_delivery_so_buckets_and_request_agree():
    channel = sms(sender_numbers=LONG, sender_strategy=SenderStrategy.ROUND_ROBIN)
    message = msg(ref="41")
    first = channel.sender_for(message)
    assert {channel.sender_for(message) for _ in range(5)} == {first}  # asking again never moves on
    assert f"sms:sender:{first}" in buckets_of(channel, message)
    assert channel.create_kwargs(message)["from_"] == first
    assert [channel.sender_for(msg(ref=str(i))) for i in range(40, 44)] == [LONG[0], LONG[1], LONG[0], LONG[1]]


@pytest.mark.parametrize("limit", [0.5, 1, 2, 3, 20, 40, 100, 2000, 1_000_000])
def test_window_safe_buckets_never_let_more_than_the_limit_into_a_second(limit):
    rate, burst = window_safe(limit)
    assert burst >= 1 and rate > 0
    # Any one-second window holds at most burst + rate x (1 s + jitter) grants; a count is an integer, so with
    # up to 15 % jitter between the grant and the provider that must stay under limit + 1.
    assert math.floor(burst + rate * 1.15) <= max(1, math.floor(limit))
    assert rate >= 0.8 * limit  # and nothing much slower than the limit: a 1/s long code sends 0.8/s, not 0.5/s


def test_settings_default_to_twilio_limits_and_reach_the_channel_config():
    t = TwilioSettings()
    assert (t.rate_per_second, t.long_code_rate, t.short_code_rate, t.messaging_service_rate) == (2000, 1, 100, 100)
    s = Settings(
        environment="test",
        twilio={"rate_per_second": 900, "long_code_rate": 2, "short_code_rate": 30, "messaging_service_rate": 12},
    )
    c = channel_config(s, "sms")
    assert (c.rate_per_second, c.long_code_rate, c.short_code_rate, c.messaging_service_rate) == (900, 2, 30, 12)


@pytest.mark.parametrize("field", ["rate_per_second", "long_code_rate", "short_code_rate", "messaging_service_rate"])
@pytest.mark.parametrize("value", [0, -1])
def test_rates_must_be_positive(field, value):
    with pytest.raises(ValidationError):
        TwilioSettings(**{field: value})


def test_the_account_cap_env_var_still_works(monkeypatch):
    monkeypatch.setenv("BROADCAST_TWILIO__RATE_PER_SECOND", "1000000")
    monkeypatch.setenv("BROADCAST_TWILIO__MESSAGING_SERVICE_RATE", "1000000")
    s = Settings(environment="test")
    assert (s.twilio.rate_per_second, s.twilio.messaging_service_rate) == (1_000_000, 1_000_000)


def test_a_paced_step_is_bounded_by_the_smallest_burst_every_message_shares():
    from broadcast.dispatch.pacing import _pace_size

    limiter = object()  # only its presence matters: no limiter, no pacing
    messages = [msg(to=f"+628120000{i:04d}", ref=str(i)) for i in range(150)]
    pool = sms(sender_numbers=LONG)  # 1/s numbers side by side under a 2,000/s account (burst 100)
    assert _pace_size(pool, messages, limiter) == window_safe(2000)[1] == 100
    assert _pace_size(sms(sender_numbers=LONG, rate_per_second=100), messages, limiter) == window_safe(100)[1]
    assert _pace_size(sms(messaging_service_sid=SERVICE, messaging_service_rate=20), messages, limiter) == 1
    assert _pace_size(pool, messages, None) == 150  # unlimited: the whole batch (LiveCheck asks per message)


@pytest.mark.parametrize(("text", "segments"), [("Banjir", 1), ("B" * 161, 2), ("Banjir 🌊 " * 10, 2)])
def test_a_message_costs_its_segments_as_twilio_counts_throughput(text, segments):
    _, cost = sms(messaging_service_sid=SERVICE).rate_buckets(OutboundMessage("+6281234567890", text, "1"))
    assert cost == segments

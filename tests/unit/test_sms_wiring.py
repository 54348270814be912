"""Settings → live channel configs, retry countdowns, and place names typed by citizens."""

from decimal import Decimal

import pytest

from broadcast.dispatch import planning
from broadcast.dispatch.wiring import build_active_channels, channel_config
from broadcast.settings import Settings
from channels.outbox import Outbox
from channels.sms import SenderStrategy
from channels.social import XPost
from geo.placenames import Resolution, resolve_place
from tests.conftest import TEST_REDIS_URL

PROD = {"environment": "production", "database_url": "sqlite:///x.db", "broker_url": TEST_REDIS_URL,
        "secret_key": "a-real-production-secret-42", "public_base_url": "https://bpbd.example.id"}


def test_twilio_settings_map_to_config_with_the_status_webhook_by_default():
    s = Settings(**PROD, twilio={"account_sid": "AC1", "auth_token": "tok", "sender_numbers": ["+6281100000001"],
                                 "sender_strategy": "round_robin", "max_segments": 2, "price_per_segment": "0.5",
                                 "currency": "IDR", "timeout_s": 3, "rate_per_second": 20, "max_concurrency": 8})
    c = channel_config(s, "sms")
    assert (c.account_sid, c.auth_token, c.sender_numbers) == ("AC1", "tok", ("+6281100000001",))
    assert c.sender_strategy is SenderStrategy.ROUND_ROBIN and c.max_segments == 2
    assert c.price_per_segment == Decimal("0.5") and c.currency == "IDR"
    assert (c.timeout_s, c.rate_per_second, c.max_concurrency) == (3, 20, 8)
    assert c.status_callback_url == "https://bpbd.example.id/webhooks/twilio/status"
    s2 = Settings(**PROD, twilio={"webhook_base_url": "https://hooks.example.id/"})
    assert channel_config(s2, "sms").status_callback_url == "https://hooks.example.id/webhooks/twilio/status"
    s3 = Settings(**PROD, twilio={"status_callback_url": "https://cb.example.id/s"})
    assert channel_config(s3, "sms").status_callback_url == "https://cb.example.id/s"


def test_x_with_only_regional_accounts_is_configured_and_built_live():
    x = {"consumer_key": "ck", "consumer_secret": "cs",
         "accounts": {"72.71": {"handle": "bpbdpalu", "access_token": "at", "access_token_secret": "ats"}}}
    s = Settings(**PROD, x=x)
    assert s.x.configured and s.channel_mode("social") == "live"
    config = channel_config(s, "social")
    assert [(a.code, a.handle) for a in config.accounts] == [("72.71", "bpbdpalu")]
    assert isinstance(build_active_channels(s)["social"], XPost)
    national = Settings(**PROD, x=x | {"access_token": "nat", "access_token_secret": "nats", "handle": "bnpb"})
    assert [a.code for a in channel_config(national, "social").accounts] == ["", "72.71"]
    assert isinstance(build_active_channels(Settings(environment="test", x=x))["social"], Outbox)


def test_retry_countdown_honours_retry_after_but_stays_under_the_visibility_timeout():
    assert planning.retry_countdown(0, None) == planning.backoff(0)
    assert planning.retry_countdown(0, 30) == 30
    assert planning.retry_countdown(5, 1) == planning.backoff(5)
    assert planning.retry_countdown(0, 10**6) == 3600


@pytest.mark.parametrize(
    "text, code",
    [
        ("Palu Barat", "72.71.02"),
        ("kec. palu-barat", "72.71.02"),
        ("Tanamodindy", "72.71.08.1004"),  # typo
        ("Tondo, Mantikulore", "72.71.08.1002"),
        ("Tondo Kota Palu", "72.71.08.1002"),
        ("Desa Tondo Kec Sirenja", "72.03.11.2002"),
        ("Kota Palu", "72.71"),
        ("kab sigi", "72.10"),
        ("72.71.08", "72.71.08"),
    ],
)
def test_place_names_resolve(text, code):
    match = resolve_place(text)
    assert match.resolution is Resolution.FOUND and match.place.kode == code


def test_ambiguous_and_unknown_places():
    tondo = resolve_place("Tondo")
    assert tondo.resolution is Resolution.AMBIGUOUS and "72.71.08.1002" in {p.kode for p in tondo.options}
    assert resolve_place("Xyzzyqwerty").resolution is Resolution.UNKNOWN
    assert resolve_place("72").resolution is Resolution.UNKNOWN  # a whole province is too wide
    assert resolve_place("99.99.99").resolution is Resolution.UNKNOWN

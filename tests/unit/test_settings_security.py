import time

import pytest
from pydantic import ValidationError

from broadcast.settings import Environment, Settings
from broadcast.users.security import TokenError, hash_password, issue_token, read_token, verify_password

CREDS = {"twilio": {"account_sid": "AC123", "auth_token": "secret"},
         "x": {"consumer_key": "k", "consumer_secret": "s", "access_token": "t", "access_token_secret": "u"}}


@pytest.mark.parametrize("env", ["development", "test", "staging"])
def test_non_production_is_always_outbox_even_with_credentials(env):
    s = Settings(environment=env, **CREDS)
    assert s.channel_mode("sms") == "outbox"
    assert s.channel_mode("social") == "outbox"


def test_production_with_credentials_goes_live():
    s = Settings(environment="production", secret_key="a-real-secret-value", database_url="postgresql://x/y",
                 broker_url="redis://r", **CREDS)
    assert s.environment is Environment.PRODUCTION
    assert s.channel_mode("sms") == "live"


def test_production_without_credentials_stays_outbox():
    s = Settings(environment="production", secret_key="a-real-secret-value", database_url="postgresql://x/y",
                 broker_url="redis://r")
    assert s.channel_mode("sms") == "outbox"


def test_production_refuses_placeholder_secret_and_embedded_parts():
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(environment="production", database_url="postgresql://x/y", broker_url="redis://r")
    with pytest.raises(ValidationError, match="DATABASE_URL"):
        Settings(environment="production", secret_key="a-real-secret-value", broker_url="redis://r")


def test_env_prefix_and_nested_delimiter(monkeypatch):
    monkeypatch.setenv("BROADCAST_TWILIO__ACCOUNT_SID", "AC999")
    monkeypatch.setenv("BROADCAST_PUBLIC_BASE_URL", "https://peringatan.example.id")
    s = Settings()
    assert s.twilio.account_sid == "AC999"
    assert s.public_base_url == "https://peringatan.example.id"


def test_default_database_is_sqlite_under_data_dir(tmp_path):
    s = Settings(data_dir=tmp_path, broker_url="")
    assert s.resolved_database_url == f"sqlite:///{tmp_path / 'broadcast.sqlite3'}"
    assert s.resolved_broker_url == f"redis+socket://{tmp_path / 'redis.sock'}"


def test_argon2_roundtrip():
    h = hash_password("s3cret-password")
    assert h.startswith("$argon2id$")
    assert verify_password(h, "s3cret-password")
    assert not verify_password(h, "wrong")
    assert not verify_password("not-a-hash", "wrong")


def test_token_roundtrip_tamper_and_expiry(monkeypatch):
    token = issue_token("k1", user_id=5, token_version=2)
    assert read_token("k1", token, max_age_s=60) == (5, 2)
    with pytest.raises(TokenError) as forged:
        read_token("other-key", token, max_age_s=60)
    assert not forged.value.expired
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 3600)
    with pytest.raises(TokenError) as expired:
        read_token("k1", token, max_age_s=60)
    assert expired.value.expired

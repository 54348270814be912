"""Shared setup of the reliability suite: an app on a fresh database with a team, data and tokens."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import sqlalchemy as sa
from fastapi.testclient import TestClient

from broadcast.api.app import create_app
from broadcast.db import session_scope
from broadcast.settings import Settings, SmsGatewaySettings, TelegramSettings, TwilioSettings
from broadcast.users.models import User
from broadcast.users.security import issue_token
from tests.factories import make_subscribers, make_team

SECRET = "reliability-secret-key-0123456789"
TWILIO_TEST_TOKEN = "reliability-twilio-test-token"
TELEGRAM_WEBHOOK_SECRET = "reliability-telegram-secret"
SMSGATEWAY_SIGNING_KEY = "reliability-smsgateway-key"

# Matrix role -> the factory user that plays it (tests.factories.make_team).
ROLE_USERS = {
    "operator_other_kabupaten": "op.grobogan",
    "operator": "op.palu",
    "approver": "apv.sulteng",
    "analyst": "analis",
    "admin": "admin",
}


def make_settings(db_url: str, redis_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "environment": "test",
        "database_url": db_url,
        "broker_url": redis_url,
        "secret_key": SECRET,
        "max_body_bytes": 200_000,
        "twilio": TwilioSettings(webhook_test_token=TWILIO_TEST_TOKEN),
        "telegram": TelegramSettings(webhook_secret=TELEGRAM_WEBHOOK_SECRET),
        "smsgateway": SmsGatewaySettings(signing_key=SMSGATEWAY_SIGNING_KEY),
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@dataclass
class World:
    client: TestClient
    engine: sa.Engine
    settings: Settings
    users: dict[str, int] = field(default_factory=dict)
    subscribers: dict[str, list[int]] = field(default_factory=dict)

    def headers(self, role: str | None) -> dict[str, str]:
        """A bearer token for the user playing `role` (fresh, so a logout earlier does not matter)."""
        if role is None or role == "anonymous":
            return {}
        with self.engine.connect() as c:
            version = c.scalar(sa.select(User.token_version).where(User.id == self.users[role]))
        token = issue_token(SECRET, user_id=self.users[role], token_version=int(version or 0))
        return {"Authorization": f"Bearer {token}"}

    def count(self, table: sa.Table | type) -> int:
        with self.engine.connect() as c:
            return int(c.scalar(sa.select(sa.func.count()).select_from(table)) or 0)

    def counts(self) -> dict[str, int]:
        """Rows in every table: what 'nothing stored' is checked against."""
        from broadcast.db import Base

        with self.engine.connect() as c:
            return {
                name: int(c.scalar(sa.select(sa.func.count()).select_from(t)) or 0)
                for name, t in Base.metadata.tables.items()
            }


@contextmanager
def world(db_url: str, redis_url: str, engine: sa.Engine, **overrides: object) -> Iterator[World]:
    settings = make_settings(db_url, redis_url, **overrides)
    with session_scope(engine) as s:
        team = make_team(s)
        subs = make_subscribers(s)
        users = {
            role: team[k].id
            for role, k in {
                "operator_other_kabupaten": "operator_grobogan",
                "operator": "operator",
                "approver": "approver",
                "analyst": "analyst",
                "admin": "admin",
            }.items()
        }
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield World(client, engine, settings, users, subs)

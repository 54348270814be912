"""Forged and replayed Telegram webhooks: without our X-Telegram-Bot-Api-Secret-Token an update is refused (403)
and nothing is stored; an update_id delivered again is processed once (Telegram redelivers until it gets a 200)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from broadcast.reports.models import Report
from broadcast.settings import TelegramSettings
from tests.fakes.telegram import telegram_update
from tests.reliability.helpers import TELEGRAM_WEBHOOK_SECRET, world

pytestmark = pytest.mark.integration
PATH = "/webhooks/telegram"
HEADER = "X-Telegram-Bot-Api-Secret-Token"
CHAT = 881234567


@pytest.fixture
def w(db_url, redis_url, engine):
    with world(db_url, redis_url, engine) as w:
        yield w


def update(text: str | None = None, **kwargs):
    return telegram_update(CHAT, text, **kwargs)


FORGED = {
    "no secret token": {},
    "empty secret token": {HEADER: ""},
    "wrong secret token": {HEADER: "not-our-secret"},
    "secret token with its last character changed": {HEADER: TELEGRAM_WEBHOOK_SECRET[:-1] + "X"},
    "secret token cut short (a prefix of ours)": {HEADER: TELEGRAM_WEBHOOK_SECRET[:-1]},
    "our secret token with a suffix": {HEADER: TELEGRAM_WEBHOOK_SECRET + "0"},
    "secret token in upper case": {HEADER: TELEGRAM_WEBHOOK_SECRET.upper()},
    "secret token in another header (Authorization)": {"Authorization": f"Bearer {TELEGRAM_WEBHOOK_SECRET}"},
}


@pytest.mark.parametrize("dbs", ["sqlite", "postgresql"], indirect=True)
def test_forged_telegram_updates_are_refused_and_store_nothing(w, record):
    for attack, headers in FORGED.items():
        before = w.counts()
        r = w.client.post(PATH, json=update("/lapor tanggul jebol, semua mengungsi"), headers=headers)
        problem = r.headers.get("content-type", "").startswith("application/problem+json")
        ok = r.status_code == 403 and problem and w.counts() == before
        record("forged webhooks", f"Telegram update, {attack}", f"{r.status_code}, nothing stored", ok=ok)
        assert ok, (attack, r.status_code, r.text)
    # The secret in the query string or the body is not the header Telegram sends: still refused.
    before = w.counts()
    body = update("/daftar Palu Barat") | {"secret_token": TELEGRAM_WEBHOOK_SECRET}
    r = w.client.post(f"{PATH}?secret_token={TELEGRAM_WEBHOOK_SECRET}", json=body)
    ok = r.status_code == 403 and w.counts() == before
    record("forged webhooks", "Telegram update with the secret in the query string and body", f"{r.status_code}",
           ok=ok)
    assert ok


def test_with_no_secret_configured_every_telegram_update_is_refused(db_url, redis_url, engine, record):
    with world(db_url, redis_url, engine, telegram=TelegramSettings()) as w:
        before = w.counts()
        attempts = [w.client.post(PATH, json=update("/lapor banjir"), headers=h) for h in ({}, {HEADER: ""})]
        ok = all(r.status_code == 503 for r in attempts) and w.counts() == before
        record("forged webhooks", "Telegram update while no webhook secret is configured",
               f"{attempts[0].status_code}, nothing stored", ok=ok, tries=len(attempts))
        assert ok


@pytest.mark.parametrize("dbs", ["sqlite", "postgresql"], indirect=True)
def test_replayed_telegram_updates_are_processed_once(w, record):
    headers = {HEADER: TELEGRAM_WEBHOOK_SECRET}
    body = update("/lapor banjir setinggi lutut di Jl. Sudirman")
    answers = [w.client.post(PATH, json=body, headers=headers) for _ in range(5)]
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
    n = w.count(Report)
    ok = n == 1 and answers[0].json()["method"] == "sendMessage" and all(r.content == b"" for r in answers[1:])
    record("replayed webhooks", "Telegram update delivered 5 times (same update_id)",
           f"{n} report stored, answered once", ok=ok, tries=5)
    assert ok

    # The same update_id with other content (a replay edited in transit) changes nothing either.
    altered = body | {"message": {**body["message"], "text": "/berhenti"}}
    r = w.client.post(PATH, json=altered, headers=headers)
    with w.engine.connect() as c:
        row = c.execute(sa.select(Report.text, Report.command).where(Report.external_id == str(body["update_id"]))).one()
    ok = r.status_code == 200 and r.content == b"" and w.count(Report) == 1 and (row.text, row.command) == (
        "banjir setinggi lutut di Jl. Sudirman", None)
    record("replayed webhooks", "Telegram update_id replayed with altered text (/berhenti)", "ignored", ok=ok)
    assert ok

    # A location following the /lapor, delivered three times, places that one report once.
    location = update(location=(119.8707, -0.8917))
    answers = [w.client.post(PATH, json=location, headers=headers) for _ in range(3)]
    with w.engine.connect() as c:
        placed = c.execute(sa.select(Report.lon, Report.lat, Report.processing).where(Report.command.is_(None))).all()
    ok = (
        [(p.lon, p.lat, p.processing) for p in placed] == [(119.8707, -0.8917, "pending")]
        and w.count(Report) == 2
        and answers[0].json()["text"].startswith("Lokasi diterima")
        and all(r.content == b"" for r in answers[1:])
    )
    record("replayed webhooks", "Telegram location after /lapor delivered 3 times (same update_id)",
           "one report placed once", ok=ok, tries=3)
    assert ok

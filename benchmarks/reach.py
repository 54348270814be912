"""Time to reach people: one alert to --size subscribers in Kota Palu, each on their preferred channel (a third
SMS, a third WhatsApp, a third Telegram; SMS as everyone's fallback), against SMS alone (every person on SMS),
in the same run.

Real parts: a Celery worker (the CLI's), PostgreSQL (a fresh database, dropped after), Redis (the broker and the
rate buckets), the twilio SDK and python-telegram-bot against local fakes in this process: tests/fakes/twilio.py
for SMS and WhatsApp (one account, 2,000 requests/s; the WhatsApp sender at its settings' rate, 10/s by default)
and tests/fakes/telegram.py (30 messages/s per bot, 1/s per chat, 20/min per channel; it counts every send over
a limit) with the agency's channel post. A person is reached when a provider accepted a message to them; the
per-second limits are checked on what the fakes received.

Nothing posts delivery receipts, so the fallback wait (BROADCAST_DISPATCH_FALLBACK_S) is set beyond the run:
a WhatsApp message counts as reached when Twilio accepted it, as a Telegram one does. The send deadline
(--deadline, BROADCAST_DISPATCH_SEND_DEADLINE_S) is the setting's: planning gives WhatsApp and Telegram only the
people they can send to within it (the rest go straight to SMS), and a row still unsent then moves to SMS.

    python benchmarks/reach.py --size 20000
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import fanout  # noqa: E402 - database, seeding, worker environment and readiness helpers

if TYPE_CHECKING:
    from tests.fakes.telegram import FakeTelegram
    from tests.fakes.twilio import FakeTwilio

BROKER = os.environ.get("BENCH_BROKER", "redis://127.0.0.1:6379/4")
WA_FROM = "+6281100000000"
CHAT_BASE = 700_000_000  # person i's Telegram chat id is CHAT_BASE + i
PREFERRED = ("sms", "whatsapp", "telegram")
ACCOUNT_RATE = 2000
TELEGRAM_TOKEN = "123456:BENCH-TOKEN"  # noqa: S105 - the fake's made-up bot token
QUIET = ("--loglevel", "WARNING")
console = Console(width=200)


def phone(i: int) -> str:
    return f"+62813{i:08d}"  # as fanout.seed numbers them


def person(i: int) -> dict[str, object]:
    """Person i prefers PREFERRED[i % 3], with SMS after it."""
    first = PREFERRED[i % 3]
    return {"channels": [first] if first == "sms" else [first, "sms"], "telegram_chat_id": CHAT_BASE + i}


def env_for(db_url: str, twilio: FakeTwilio, telegram: FakeTelegram, wa_rate: float, deadline: float) -> dict[str, str]:
    from channels.whatsapp.templates import bodies

    sids = {key: "HX" + f"{i:032x}" for i, key in enumerate(sorted(bodies()))}
    for key, sid in sids.items():
        twilio.add_content(sid, bodies()[key])
    env = fanout.worker_env(
        db_url,
        twilio.url,
        twilio.account_sid,
        twilio.auth_token,
        rate=ACCOUNT_RATE,
    )
    env.update(
        BROADCAST_BROKER_URL=BROKER,
        BROADCAST_ENABLED_CHANNELS='["sms", "whatsapp", "telegram", "telegram_channel"]',
        BROADCAST_TWILIO__WHATSAPP__FROM_NUMBER=WA_FROM,
        BROADCAST_TWILIO__WHATSAPP__CONTENT_SIDS=json.dumps(sids),
        BROADCAST_TWILIO__WHATSAPP__SENDER_RATE=str(wa_rate),
        BROADCAST_TWILIO__WHATSAPP__TIER="unlimited",
        BROADCAST_TELEGRAM__BOT_TOKEN=TELEGRAM_TOKEN,
        BROADCAST_TELEGRAM__CHANNEL_CHAT_ID="@bpbdpalu",
        BROADCAST_TELEGRAM__API_BASE_URL=telegram.base_url,
        BROADCAST_DISPATCH_FALLBACK_S="3600",
        BROADCAST_DISPATCH_SEND_DEADLINE_S=str(int(deadline)),
        BROADCAST_PUBLIC_BASE_URL="https://bpbd-palu.example.id",
    )
    return env


def max_in_window(times: list[float]) -> int:
    """The most events in any one-second window."""
    times, busiest, lo = sorted(times), 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= 1.0:
            lo += 1
        busiest = max(busiest, hi - lo + 1)
    return busiest


def messages_since(
    twilio: FakeTwilio, telegram: FakeTelegram, mark: tuple[int, int], offset: float
) -> list[tuple[float, str, int]]:
    """(wall time, channel, person) of every message the fakes accepted since `mark`; Telegram's monotonic times
    moved onto the wall clock by `offset`. The channel post (to @bpbdpalu) is not a person's."""
    out: list[tuple[float, str, int]] = []
    for r in twilio.requests[mark[0] :]:
        if r.method == "POST":
            to = r.form.get("To", "")
            out.append(
                (r.at, "whatsapp" if to.startswith("whatsapp:") else "sms", int(to.removeprefix("whatsapp:")[6:]))
            )
    for m in telegram.sent[mark[1] :]:
        if not m["chat_id"].startswith("@"):
            out.append((m["at"] + offset, "telegram", int(m["chat_id"]) - CHAT_BASE))
    return out


def approve(engine: sa.Engine, channels: tuple[str, ...]) -> tuple[int, float]:
    """An alert for Kota Palu on `channels`, approved as the approval route does it (AlertApproved recorded, sent
    after the commit): (alert id, wall time of the commit)."""
    from broadcast import events
    from broadcast.alerts import service as alerts
    from broadcast.alerts.schemas import AlertCreate
    from broadcast.db import session_factory
    from broadcast.users.models import User
    from broadcast.worker import celery
    from tests.factories import alert_payload

    with session_factory(engine)() as s:
        team = {u.username: u for u in s.scalars(sa.select(User))}
        data = AlertCreate(**alert_payload("Actual", codes=["72.71"], channels=list(channels)))
        alert = alerts.create_alert(s, data=data, author=team["op.palu"], sender="bpbd@palu")
        alerts.submit_alert(s, alert_id=alert.id, actor=team["op.palu"])
        alerts.approve_alert(s, alert_id=alert.id, approver=team["apv.sulteng"], production=True)
        alerts.start_delivery(s, alert=alert)
        s.commit()
        approved_at = time.time()
        events.send_committed(s, app=celery)
        return alert.id, approved_at


def run_phase(
    engine: sa.Engine, twilio: FakeTwilio, telegram: FakeTelegram, n: int, channels: tuple[str, ...], timeout: float
) -> dict[str, object]:
    """Approve one alert to everyone and wait until every person was reached (or `timeout`)."""
    from broadcast.dispatch.models import Delivery

    mark = (len(twilio.requests), len(telegram.sent))
    violations = telegram.violations
    offset = time.time() - time.monotonic()
    alert_id, approved_at = approve(engine, channels)
    deadline = approved_at + timeout
    while time.time() < deadline:
        if len({p for _, _, p in messages_since(twilio, telegram, mark, offset)}) >= n:
            break
        time.sleep(0.5)
    open_rows = sa.select(sa.func.count()).where(
        Delivery.alert_id == alert_id, Delivery.state.in_(("pending", "sending"))
    )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        while c.scalar(open_rows) and time.time() < deadline:
            time.sleep(0.5)
        rows = dict(
            c.execute(
                sa.select(Delivery.state, sa.func.count()).where(Delivery.alert_id == alert_id).group_by(Delivery.state)
            ).all()
        )
    time.sleep(1.0)  # a late duplicate would have arrived by now
    sent = messages_since(twilio, telegram, mark, offset)
    first: dict[int, float] = {}
    per_person: dict[int, int] = {}
    by_channel: dict[str, list[float]] = {}
    for at, channel, who in sorted(sent):
        per_person[who] = per_person.get(who, 0) + 1
        if who not in first:
            first[who] = at - approved_at
            by_channel.setdefault(channel, []).append(at - approved_at)
    twilio_times = {c: [at for at, ch, _ in sent if ch == c] for c in ("sms", "whatsapp")}
    return {
        "people": n,
        "overall": sorted(first.values()),
        "by_channel": by_channel,
        "planned": {c: sum(1 for i in range(n) if _first_channel(i, channels) == c) for c in PREFERRED},
        "twice": sum(1 for k in per_person.values() if k > 1),
        "rows": rows,
        "max_sms_1s": max_in_window(twilio_times["sms"]),
        "max_whatsapp_1s": max_in_window(twilio_times["whatsapp"]),
        "max_account_1s": max_in_window(twilio_times["sms"] + twilio_times["whatsapp"]),
        "max_bot_1s": max_in_window([at for at, ch, _ in sent if ch == "telegram"]),
        "telegram_violations": telegram.violations - violations,
        "channel_posts": sum(1 for m in telegram.sent[mark[1] :] if m["chat_id"].startswith("@")),
    }


def _first_channel(i: int, channels: tuple[str, ...]) -> str:
    return PREFERRED[i % 3] if "whatsapp" in channels else "sms"


def at_share(times: list[float], total: int, share: float) -> str:
    """Seconds from approval until `share` of `total` people were reached ('-' if never)."""
    at = _at(times, total, share)
    return "-" if at is None else f"{at:.1f} s"


OPTIONS: tuple[tuple[str, type, float, str], ...] = (
    ("--size", int, 200_000, "subscribers in Kota Palu"),
    ("--workers", int, 2, "worker pool processes"),
    ("--wa-rate", float, 10.0, "WhatsApp sender rate (messages/s, settings)"),
    ("--timeout", float, 3600.0, "give up on a phase after this many seconds"),
    ("--deadline", float, 30.0, "send deadline, seconds (BROADCAST_DISPATCH_SEND_DEADLINE_S; 0: off)"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for flag, kind, default, text in OPTIONS:
        parser.add_argument(flag, type=kind, default=default, help=text)
    parser.add_argument("--worker-log", default="", help="write the worker's INFO log to this file")
    args = parser.parse_args()

    import redis

    from tests.fakes.telegram import FakeTelegram
    from tests.fakes.twilio import FakeTwilio

    redis.Redis.from_url(BROKER).flushdb()
    db_url = fanout.make_db()
    worker = None
    started = datetime.now(UTC)
    with FakeTwilio(server="asyncio") as twilio, FakeTelegram(TELEGRAM_TOKEN) as telegram:
        env = env_for(db_url, twilio, telegram, args.wa_rate, args.deadline)
        # Before anything imports the Celery app: it reads its broker (and the app its settings) at import.
        os.environ.update({k: v for k, v in env.items() if k.startswith("BROADCAST_")})
        try:
            fanout.seed(db_url, args.size, person)
            worker = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "broadcast.cli",
                    "worker",
                    "--concurrency",
                    str(args.workers),
                    *(("--loglevel", "INFO") if args.worker_log else QUIET),
                ],
                env=env,
                start_new_session=True,
                stdout=subprocess.DEVNULL,
                stderr=open(args.worker_log, "w") if args.worker_log else subprocess.DEVNULL,  # noqa: SIM115
            )
            fanout.wait_ready(BROKER)
            from broadcast.db import make_engine
            from broadcast.subscribers.models import Subscriber

            engine = make_engine(db_url)
            ours = run_phase(
                engine, twilio, telegram, args.size, ("sms", "whatsapp", "telegram", "telegram_channel"), args.timeout
            )
            with engine.begin() as c:  # the baseline: every person on SMS alone
                c.execute(sa.update(Subscriber).values(channels=["sms"]))
            sms = run_phase(engine, twilio, telegram, args.size, ("sms",), args.timeout)
            engine.dispose()
        finally:
            if worker is not None:
                worker.send_signal(signal.SIGTERM)
                worker.wait(timeout=60)
            fanout.drop_db(db_url)
    report(args, started, ours, sms)


def report(args: argparse.Namespace, started: datetime, ours: dict[str, object], sms: dict[str, object]) -> None:
    n = args.size
    table = Table(title=f"Approval → people reached, {n:,} subscribers in Kota Palu ({started:%Y-%m-%d %H:%M} UTC)")
    for col in ("run", "people", "50 %", "90 %", "100 %"):
        table.add_column(col, justify="left" if col == "run" else "right")
    for label, res in (("ours, overall", ours), ("SMS alone (baseline)", sms)):
        times = res["overall"]
        assert isinstance(times, list)
        table.add_row(label, f"{len(times):,} / {n:,}", *(at_share(times, n, s) for s in (0.5, 0.9, 1.0)))
    planned, by_channel = ours["planned"], ours["by_channel"]
    assert isinstance(planned, dict) and isinstance(by_channel, dict)
    for channel in PREFERRED:  # the people reached on each channel (preferring it: `planned`)
        times = by_channel.get(channel, [])
        table.add_row(
            f"ours, reached on {channel}",
            f"{len(times):,} (preferring it: {planned[channel]:,})",
            *(at_share(times, len(times), s) for s in (0.5, 0.9, 1.0)),
        )
    console.print(table)
    checks = Table(title="Limits and duplicates (counted on what the fakes received)")
    for col in ("check", "ours", "SMS alone", "limit"):
        checks.add_column(col, justify="left" if col == "check" else "right")
    rows = (
        ("Twilio account, most requests in any 1 s", "max_account_1s", f"{ACCOUNT_RATE:,}"),
        ("SMS, most in any 1 s", "max_sms_1s", f"{ACCOUNT_RATE:,}"),
        ("WhatsApp sender, most in any 1 s", "max_whatsapp_1s", f"{args.wa_rate:g}"),
        ("Telegram bot, most in any 1 s", "max_bot_1s", "30"),
        ("Telegram sends over a limit (fake's count)", "telegram_violations", "0"),
        ("Telegram channel posts", "channel_posts", "1 / 0"),
        ("people messaged twice", "twice", "0"),
        ("delivery rows by state", "rows", ""),
    )
    for label, key, limit in rows:
        checks.add_row(label, str(ours[key]), str(sms[key]), limit)
    console.print(checks)
    o90, s90 = _at(ours["overall"], n, 0.9), _at(sms["overall"], n, 0.9)
    verdict = f"{s90 / o90:.2f}× sooner" if o90 and s90 else "not measured"
    goal = "met" if o90 and s90 and s90 >= 3 * o90 else "NOT met"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    console.print(
        f"90 % of people reached: ours vs SMS alone {verdict} (goal ≥ 3×: {goal}). {os.cpu_count()} cores shared; "
        f"load average at the end {load}; {args.workers} worker pool processes; send deadline {args.deadline:g} s."
    )


def _at(times: object, total: int, share: float) -> float | None:
    assert isinstance(times, list)
    k = math.ceil(share * total)
    return float(times[k - 1]) if total and len(times) >= k else None


if __name__ == "__main__":
    main()

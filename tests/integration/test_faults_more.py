"""More must-show faults, with the real processes of test_fanout_faults (its `Rig`: `broadcast worker` and
`broadcast beat` subprocesses, PostgreSQL, Redis, the fake Twilio in its own process):

- PostgreSQL connections dropped (every backend of the database terminated) twice mid fan-out: it completes,
  every recipient exactly once;
- provider timeouts: requests that hang past the Twilio client's timeout, some after the provider stored the
  message, some before: each row is in doubt, reconciled against the provider's message list, one message each;
- clock jumps around expiry: the expiry passes mid fan-out (the clock jumped ahead of it): nothing leaves after
  beyond the steps in flight, the rest is skipped; then the clock jumps back before the expiry: nothing is resent;
- report intake while PostgreSQL connections are dropped: every 202 is stored, failures are clean 503s that the
  client retries with the same external_id: 0 lost, 0 duplicates.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa
import time_machine
from celery import Celery
from fastapi.testclient import TestClient

from broadcast.alerts.models import Alert
from broadcast.api.app import create_app
from broadcast.db import make_engine, session_scope, utcnow
from broadcast.dispatch.models import Delivery
from broadcast.dispatch.pacing import CHECK_EVERY
from broadcast.dispatch.sweep import sweep
from broadcast.reports.models import Report
from broadcast.settings import Settings
from tests.integration import test_fanout_faults as faults
from tests.integration.test_fanout_faults import WORKERS, Rig, _phones

pytestmark = pytest.mark.integration


@pytest.fixture
def pg_url(pg_dbs) -> str:  # type: ignore[no-untyped-def]
    return pg_dbs.fresh()


@pytest.fixture
def rig(tmp_path, pg_url, redis_url) -> Iterator[Rig]:  # type: ignore[no-untyped-def]
    r = Rig(tmp_path, pg_url, redis_url)
    yield r
    r.close()


def _terminate_backends(engine: sa.Engine) -> int:
    """Kill every other connection to this database (what a PostgreSQL restart or failover does to clients)."""
    with engine.connect() as c:
        killed = c.execute(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
        c.rollback()
    return int(killed)


def _paced(rig: Rig, per_second: int) -> None:
    # A fan-out of a few seconds, so the faults land in the middle of it.
    rig.extra_env["BROADCAST_TWILIO__RATE_PER_SECOND"] = str(per_second)
    rig.extra_env["BROADCAST_TWILIO__MESSAGING_SERVICE_RATE"] = str(per_second)


def test_postgres_connections_dropped_mid_fanout_reach_everyone_exactly_once(rig: Rig, record) -> None:
    n = 3000
    rig.seed(n)
    _paced(rig, 400)
    rig.start("worker")
    rig.start("beat")
    alert_id = rig.approve()
    killer = make_engine(rig.db_url)
    rig.enqueue_fanout(alert_id)
    killed: list[int] = []
    rounds: list[int] = []
    try:
        for threshold in (n // 5, n // 2):
            rig.wait_for(f"{threshold} messages", lambda t=threshold: len(rig.posts()) >= t)
            # A second of drops: a connection in the middle of a claim, a check or a record goes too.
            stop = time.monotonic() + 1.0
            while time.monotonic() < stop:
                killed.append(_terminate_backends(killer))
                time.sleep(0.02)
            rounds.append(sum(killed) - sum(rounds))
    finally:
        killer.dispose()
    rig.wait_settled(alert_id, n)
    posts = Counter(to for _, to in rig.posts())
    sent = _phones(rig, alert_id, "sent")
    duplicates = sum(c - 1 for c in posts.values())
    logs = "".join(p.read_text(errors="replace") for p in rig.tmp.glob("worker-*.log"))
    survived = logs.count("database connection lost")
    crashed = len(re.findall(r"Task dispatch\.send_batch\[[^]]+\] raised unexpected", logs))
    print(
        f"\n{sum(killed)} backends terminated mid fan-out, {survived} database steps retried, {crashed} batches "
        f"crashed; "
        f"requests {sum(posts.values()):,}, recipients {len(posts):,}"
    )
    ok = (
        rig.states(alert_id) == Counter({"sent": n})
        and len(posts) == n
        and set(posts) == set(sent)
        and duplicates == 0
        and not crashed
        and all(k > 0 for k in rounds)
    )
    record(
        "fan-out faults",
        f"PostgreSQL connections dropped (every 20 ms for 1 s, twice) mid fan-out ({n:,} recipients)",
        f"{len(posts):,} of {n:,} reached once, {duplicates} duplicates; {sum(killed)} backends killed, "
        f"{survived} database steps retried on a new connection, {crashed} batches lost to the drops",
        ok=ok,
    )
    assert all(k > 0 for k in rounds)  # each round found the worker's connections to kill
    assert rig.states(alert_id) == Counter({"sent": n})
    assert len(posts) == n and set(posts) == set(sent)
    assert duplicates == 0
    assert crashed == 0  # every claim, check and record survived the drops (none waited for the sweep)


# The fake process of test_fanout_faults, plus numbers for which it stores the message and then hangs (Twilio
# accepted it, the answer is lost); plain `fail_next(hang=...)` failures hang before storing anything.
TIMEOUT_FAKE = """
import json, sys, time
sys.path.insert(0, {root!r})
from tests.fakes.twilio import FakeTwilio
spec = json.loads({failures!r})
fake = FakeTwilio().start()
slow = set(spec["store_then_hang"])
create = fake._create
def _create(form):
    answer = create(form)
    if form.get("To") in slow:
        slow.discard(form.get("To"))  # once: the retry's reconciliation finds it, nothing is sent again
        time.sleep(spec["hang"])
    return answer
fake._create = _create
fake.fail_next(spec["hang_first"], hang=spec["hang"])
print(fake.url, fake.account_sid, fake.auth_token, flush=True)
while True:
    time.sleep(3600)
"""


def test_provider_timeouts_are_reconciled_never_sent_twice(tmp_path, pg_url, redis_url, record, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    n, hang_first, hang = 200, 6, 3.0
    store_then_hang = [f"+62813{i:08d}" for i in range(150, 156)]
    monkeypatch.setattr(faults, "FAKE_SCRIPT", TIMEOUT_FAKE)
    spec = {"store_then_hang": store_then_hang, "hang_first": hang_first, "hang": hang}
    timeout_rig = Rig(tmp_path, pg_url, redis_url, failures=spec)  # type: ignore[arg-type]
    try:
        timeout_rig.seed(n)
        timeout_rig.extra_env["BROADCAST_TWILIO__TIMEOUT_S"] = "1"
        timeout_rig.start("worker")
        timeout_rig.start("beat")
        alert_id = timeout_rig.approve()
        timeout_rig.enqueue_fanout(alert_id)
        timeout_rig.wait_settled(alert_id, n)
        posts = Counter(to for _, to in timeout_rig.posts())
        listed = httpx.get(
            f"{timeout_rig.fake_url}/2010-04-01/Accounts/{timeout_rig.sid}/Messages.json",
            params={"PageSize": 1000},
            auth=(timeout_rig.sid, timeout_rig.token),
            timeout=30,
        ).json()["messages"]
        stored = Counter(m["to"] for m in listed)
        sent = _phones(timeout_rig, alert_id, "sent")
        timed_out = {to for to, c in posts.items() if c > 1}  # hung before storing: sent again after the check
        with timeout_rig.engine.connect() as c:
            pids = dict(
                c.execute(
                    sa.select(Delivery.recipient_key, Delivery.provider_id).where(Delivery.alert_id == alert_id)
                ).all()
            )
    finally:
        timeout_rig.close()
    extra = sum(c - 1 for c in stored.values())
    print(f"\n{hang_first + len(store_then_hang)} timeouts; requests {sum(posts.values())}, messages {len(listed)}")
    ok = (
        len(stored) == n
        and extra == 0
        and len(sent) == n
        and max(posts[to] for to in store_then_hang) == 1
        and {m["sid"] for m in listed} == set(pids.values())
    )
    record(
        "fan-out faults",
        f"provider timeouts: {hang_first} requests hang before the provider stores them, "
        f"{len(store_then_hang)} after ({n} recipients)",
        f"{len(stored)} of {n} hold exactly one message, {extra} duplicates, "
        f"{len(store_then_hang)} found by reconciliation, {len(timed_out)} sent again after checking",
        ok=ok and len(timed_out) == hang_first,
    )
    assert len(stored) == n and extra == 0 and len(sent) == n
    assert max(posts[to] for to in store_then_hang) == 1  # in doubt, found in the list, not sent again
    assert len(timed_out) == hang_first  # not in the list: sent again, once
    assert {m["sid"] for m in listed} == set(pids.values())  # every row names the message the provider holds


def _expires_at(rig: Rig, alert_id: int, when: str) -> None:
    with rig.engine.begin() as c:
        c.execute(sa.update(Alert).where(Alert.id == alert_id).values(expires=sa.text(when)))


def test_clock_jumps_around_expiry_send_nothing_after_it_and_resend_nothing(rig: Rig, record) -> None:
    n = 3000
    rig.seed(n)
    _paced(rig, 400)
    rig.start("worker")
    rig.start("beat")
    alert_id = rig.approve()
    rig.enqueue_fanout(alert_id)
    rig.wait_for("the first messages", lambda: len(rig.posts()) >= 600)
    # The clock jumps past the expiry: from now on every check (claim, the in-batch check, the sweep) sees it.
    _expires_at(rig, alert_id, "now() - interval '1 second'")
    expired_at = time.time()
    rig.wait_settled(alert_id, n)
    rig.wait_for("the sweep to expire the alert", lambda: _state(rig, alert_id) == "expired")
    posts = rig.posts()
    after = [at for at, _ in posts if at > expired_at]
    states = rig.states(alert_id)
    twice = sum(c - 1 for c in Counter(to for _, to in posts).values())
    print(f"\nexpiry passed after {len(posts) - len(after):,} requests; {len(after)} arrived later; rows {states}")
    forward_ok = (
        len(after) <= WORKERS * CHECK_EVERY
        and states["skipped"] > 0
        and states["sent"] + states["skipped"] == n
        and states["sent"] == len(posts)
        and not twice
    )
    record(
        "fan-out faults",
        f"clock jumps past the expiry mid fan-out ({n:,} recipients)",
        f"{len(after)} in-flight requests after the expiry (allowed {WORKERS * CHECK_EVERY}), "
        f"{states['skipped']:,} skipped, {twice} sent twice",
        ok=forward_ok,
    )
    assert len(after) <= WORKERS * CHECK_EVERY
    assert states["skipped"] > 0 and states["sent"] + states["skipped"] == n
    assert states["sent"] == len(posts)

    # The clock jumps back before the expiry: the alert looks unexpired again, every batch task is delivered
    # again and the sweep runs on a clock two hours behind. Nothing of it may be resent.
    _expires_at(rig, alert_id, "now() + interval '1 hour'")
    with rig.engine.connect() as c:
        ids = list(c.scalars(sa.select(Delivery.id).where(Delivery.alert_id == alert_id).order_by(Delivery.id)))
    app = Celery(broker=rig.broker)
    try:
        for start in range(0, len(ids), 200):
            app.send_task("dispatch.send_batch", args=[ids[start : start + 200]], queue="broadcast")
    finally:
        app.close()
    with time_machine.travel(utcnow() - timedelta(hours=2), tick=True), session_scope(rig.engine) as s:
        plan = sweep(s, stale_s=10, batch_size=200)
    before = len(posts)
    time.sleep(3)  # the redelivered batches run (and find nothing to claim)
    again = rig.posts()
    print(f"clock back: {len(again) - before} requests, sweep re-planned {len(plan.batches)} batches")
    back_ok = len(again) == before and rig.states(alert_id) == states and _state(rig, alert_id) == "expired"
    record(
        "fan-out faults",
        "clock jumps back 2 h after an expiry; every batch task redelivered",
        f"{len(again) - before} requests sent again, {len(plan.batches)} batches re-planned by the sweep",
        ok=back_ok and not plan.batches and not plan.fanout_alert_ids,
    )
    assert not plan.batches and not plan.fanout_alert_ids
    assert len(again) == before
    assert rig.states(alert_id) == states
    assert _state(rig, alert_id) == "expired"


def _state(rig: Rig, alert_id: int) -> str:
    with rig.engine.connect() as c:
        return str(c.scalar(sa.select(Alert.state).where(Alert.id == alert_id)))


@pytest.fixture
def intake(pg_url, redis_url, tmp_path, monkeypatch) -> Iterator[tuple[TestClient, str]]:  # type: ignore[no-untyped-def]
    settings = Settings(
        environment="test",
        database_url=pg_url,
        broker_url=redis_url,
        secret_key="test-secret-key-123",
        public_base_url="https://bpbd-sulteng.example.id",
        data_dir=tmp_path,
        report_api_keys={"petabencana": "partner-key-123"},
    )
    monkeypatch.setattr("broadcast.reports.routes.kick_enrichment", lambda: None)  # enrichment is not under test
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client, pg_url


def test_report_intake_under_postgres_connection_drops_loses_nothing(intake, record) -> None:  # type: ignore[no-untyped-def]
    client, url = intake
    n, max_tries = 300, 20
    stop = threading.Event()
    killer = make_engine(url)
    kills: list[int] = []

    def kill_loop() -> None:
        while not stop.is_set():
            kills.append(_terminate_backends(killer))
            stop.wait(0.03)

    thread = threading.Thread(target=kill_loop, daemon=True)
    statuses: Counter[int] = Counter()
    acked: dict[str, int] = {}
    bad: list[str] = []
    thread.start()
    try:
        for i in range(n):
            body = {"external_id": f"r-{i}", "text": f"Banjir setinggi lutut di Palu Barat, laporan {i}"}
            for _ in range(max_tries):
                r = client.post("/api/v1/reports", headers={"X-API-Key": "partner-key-123"}, json=body)
                statuses[r.status_code] += 1
                if r.status_code == 202:
                    acked[body["external_id"]] = r.json()["id"]
                    break
                if r.status_code != 503 or r.headers["content-type"] != "application/problem+json":
                    bad.append(f"{r.status_code} {r.text[:200]}")
                    break
    finally:
        stop.set()
        thread.join()
        killer.dispose()
    with make_engine(url).connect() as c:
        rows = c.execute(sa.select(Report.id, Report.external_id)).all()
    stored = Counter(external_id for _, external_id in rows)
    lost = [e for e, rid in acked.items() if (rid, f"partner:petabencana:{e}") not in set(map(tuple, rows))]
    duplicates = sum(c - 1 for c in stored.values())
    print(f"\n{sum(kills)} backends killed; answers {dict(statuses)}; stored {len(rows)}; {json.dumps(bad[:3])}")
    record(
        "report intake faults",
        f"{n} reports posted while PostgreSQL connections are dropped every 30 ms",
        f"{len(acked)} acknowledged, {statuses[503]} clean 503s retried, {len(lost)} lost, {duplicates} duplicates, "
        f"{len(bad)} other answers ({sum(kills)} backends killed)",
        ok=len(acked) == n and not lost and not duplicates and not bad,
    )
    assert not bad  # a failure is a 503 problem, never a 500 or a hang
    assert statuses[503] > 0  # the drops did hit the writes
    assert len(acked) == n  # a retry with the same external_id always got through
    assert not lost and duplicates == 0 and len(rows) == n

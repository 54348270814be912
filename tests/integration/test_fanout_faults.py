"""Must-show faults of the fan-out, each with real processes: `broadcast worker` and `broadcast beat` as
subprocesses, PostgreSQL, Redis, and the fake Twilio in its own process, reached through the real twilio SDK.

- kill -9 of the worker in the middle of a fan-out (BROADCAST_FAULT_RECIPIENTS, default 20,000), then a new
  worker: every recipient exactly one message; rows left in doubt are reconciled against the fake's message list;
- Redis killed and restarted (no persistence: every queued task is lost) mid-fan-out: completes, no duplicates;
- 429, then 500, then success: retried with growing backoff, one message in the end;
- cancel committed mid-fan-out: nothing leaves afterwards except what was already handed to the client.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
import sqlalchemy as sa
from celery import Celery

from broadcast.alerts import service as alerts
from broadcast.alerts.models import Alert, MsgType
from broadcast.alerts.schemas import AlertCreate
from broadcast.db import make_engine, session_scope
from broadcast.dispatch.models import Delivery
from broadcast.dispatch.pacing import CHECK_EVERY
from broadcast.dispatch.plan import plan_alert, queue_of
from broadcast.subscribers.models import Subscriber
from tests.conftest import require_service
from tests.factories import alert_payload, make_team

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
KILL_RECIPIENTS = int(os.environ.get("BROADCAST_FAULT_RECIPIENTS", "20000"))
WORKERS = 2
LEASE_S = 15  # longer than any batch takes here, so only a dead worker's rows are ever taken over
FINAL = ("sent", "delivered", "undelivered", "failed", "skipped")

FAKE_SCRIPT = """
import json, sys, time
sys.path.insert(0, {root!r})
from tests.fakes.twilio import FakeTwilio
fake = FakeTwilio().start()
for failure in json.loads({failures!r}):
    fake.fail_next(1, **failure)
print(fake.url, fake.account_sid, fake.auth_token, flush=True)
while True:
    time.sleep(3600)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=60)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


class Rig:
    """One fresh PostgreSQL database, a fake Twilio process, worker and beat processes on a given broker."""

    def __init__(self, tmp: Path, db_url: str, broker: str, failures: list[dict[str, object]] | None = None) -> None:
        self.tmp, self.db_url, self.broker = tmp, db_url, broker
        self.engine = make_engine(db_url)
        self.extra_env: dict[str, str] = {}
        self.procs: list[subprocess.Popen[bytes]] = []
        self.fake = subprocess.Popen(
            [sys.executable, "-c", FAKE_SCRIPT.format(root=str(ROOT), failures=json.dumps(failures or []))],
            stdout=subprocess.PIPE,
            stderr=(tmp / "fake-twilio.log").open("wb"),  # a killed worker's sockets reset: noise, not failures
            start_new_session=True,
        )
        assert self.fake.stdout is not None
        self.fake_url, self.sid, self.token = self.fake.stdout.readline().decode().split()
        with session_scope(self.engine) as s:
            self.team = make_team(s)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BROADCAST_", "TWILIO_"))}
        env.update(
            BROADCAST_ENVIRONMENT="production",
            BROADCAST_SECRET_KEY="fault-tests-production-secret",
            BROADCAST_DATABASE_URL=self.db_url,
            BROADCAST_BROKER_URL=self.broker,
            BROADCAST_DATA_DIR=str(self.tmp),
            BROADCAST_ENABLED_CHANNELS='["sms"]',
            BROADCAST_TWILIO__ACCOUNT_SID=self.sid,
            BROADCAST_TWILIO__AUTH_TOKEN=self.token,
            BROADCAST_TWILIO__MESSAGING_SERVICE_SID="MG" + "a" * 32,
            BROADCAST_TWILIO__API_BASE_URL=self.fake_url,
            BROADCAST_TWILIO__RATE_PER_SECOND="1000000",  # the account cap and the service's bucket: both off
            BROADCAST_TWILIO__MESSAGING_SERVICE_RATE="1000000",
            BROADCAST_TWILIO__MAX_CONCURRENCY="16",
            BROADCAST_DISPATCH_LEASE_S=str(LEASE_S),
            BROADCAST_DISPATCH_SWEEP_S="1",
            BROADCAST_DISPATCH_STALE_S="10",
            PYTHONPATH=str(ROOT),
        )
        return env | self.extra_env

    def start(self, what: str, concurrency: int = WORKERS, name: str | None = None) -> subprocess.Popen[bytes]:
        """`worker` (node `name`, if given) or `beat`, as its own process group (so kill -9 takes the pool
        processes too)."""
        args = ["worker", f"--concurrency={concurrency}"] if what == "worker" else ["beat"]
        if name is not None:
            args += ["--name", name]
        log = (self.tmp / f"{what}-{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "broadcast.cli", *args, "--loglevel", "WARNING"],
            env=self.env(),
            cwd=self.tmp,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def seed(self, n: int, *, code: str = "72.71.01.1004", prefix: str = "+62813") -> None:
        rows = [
            {
                "phone": f"{prefix}{i:08d}",
                "language": "id",
                "admin_code": code,
                "active": True,
                "channels": ["sms"],
            }
            for i in range(n)
        ]
        with self.engine.begin() as conn:
            for start in range(0, n, 10_000):
                conn.execute(sa.insert(Subscriber.__table__), rows[start : start + 10_000])

    def approve(self, codes: list[str] | None = None) -> int:
        """An approved SMS alert of Kota Palu's operator, or of the province's approver outside Palu."""
        palu = all(c.startswith("72.71") for c in codes or ["72.71"])
        author, approver = ("operator", "approver") if palu else ("approver", "admin")
        with session_scope(self.engine) as s:
            payload = alert_payload("Actual", codes=codes)
            payload["channels"] = ["sms"]
            operator = s.merge(self.team[author])
            alert = alerts.create_alert(s, data=AlertCreate(**payload), author=operator, sender="bpbd@palu")
            alerts.submit_alert(s, alert_id=alert.id, actor=operator)
            alerts.approve_alert(s, alert_id=alert.id, approver=s.merge(self.team[approver]), production=True)
            return alert.id

    def enqueue_fanout(self, alert_id: int, queue: str = "broadcast") -> None:
        app = Celery(broker=self.broker)
        try:
            app.send_task("dispatch.fanout_alert", args=[alert_id], queue=queue)
        finally:
            app.close()

    def posts(self) -> list[tuple[float, str]]:
        """(arrival time, To) of every message request the fake received."""
        return [(at, to) for at, to in httpx.get(f"{self.fake_url}/_posts", timeout=60).json()["posts"]]

    def states(self, alert_id: int) -> Counter[str]:
        with self.engine.connect() as c:
            rows = c.execute(
                sa.select(Delivery.state, sa.func.count()).where(Delivery.alert_id == alert_id).group_by(Delivery.state)
            )
            return Counter(dict(rows.all()))

    def wait_for(self, what: str, check, timeout: float = 240.0) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                logs = "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.tmp.glob("*.log")))
                raise AssertionError(f"timed out waiting for {what}\n{logs}")
            time.sleep(0.2)

    def wait_settled(self, alert_id: int, n: int) -> None:
        self.wait_for("every delivery to settle", lambda: sum(self.states(alert_id)[s] for s in FINAL) >= n)

    def close(self) -> None:
        for proc in reversed(self.procs):
            _stop(proc)
        _stop(self.fake)
        self.engine.dispose()


@pytest.fixture
def pg_url(pg_dbs) -> str:  # type: ignore[no-untyped-def]
    return pg_dbs.fresh()


@pytest.fixture
def rig(request, tmp_path, pg_url, redis_url) -> Iterator[Rig]:  # type: ignore[no-untyped-def]
    failures = getattr(request, "param", None)
    r = Rig(tmp_path, pg_url, redis_url, failures=failures)
    yield r
    r.close()


def test_two_worker_nodes_share_one_fanout_and_reach_everyone_exactly_once(rig: Rig) -> None:
    """More worker nodes on the same Redis and PostgreSQL (docker compose --scale worker=N): the claims split
    the batches between them, and no recipient gets a second request."""
    n = 2000
    rig.seed(n)
    names = ["warga-a@bench", "warga-b@bench"]
    for name in names:
        rig.start("worker", concurrency=1, name=name)
    app = Celery(broker=rig.broker)
    try:
        rig.wait_for(
            "both nodes to answer", lambda: set(names) <= {k for r in app.control.ping(timeout=0.5) for k in r}
        )
        alert_id = rig.approve()
        rig.enqueue_fanout(alert_id)
        rig.wait_settled(alert_id, n)
        stats = app.control.inspect(destination=names, timeout=5).stats() or {}
    finally:
        app.close()
    posts = Counter(to for _, to in rig.posts())
    assert rig.states(alert_id) == Counter({"sent": n})
    assert len(posts) == n and max(posts.values()) == 1  # everyone once, nobody twice
    assert set(posts) == set(_phones(rig, alert_id, "sent"))
    batches = {node: stats[node]["total"].get("dispatch.send_batch", 0) for node in names}
    assert all(batches.values()), batches  # both nodes sent


def _phones(rig: Rig, alert_id: int, state: str) -> dict[str, int]:
    with rig.engine.connect() as c:
        rows = c.execute(
            sa.select(Subscriber.phone, Delivery.attempts)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.alert_id == alert_id, Delivery.state == state)
        )
        return dict(rows.all())


def test_kill_9_mid_fanout_then_a_new_worker_reaches_everyone_exactly_once(rig: Rig, record) -> None:
    n = KILL_RECIPIENTS
    rig.seed(n)
    first = rig.start("worker")
    rig.start("beat")
    alert_id = rig.approve()
    rig.enqueue_fanout(alert_id)
    rig.wait_for(
        "a third of the messages, with a batch being sent",
        lambda: len(rig.posts()) >= n // 3 and rig.states(alert_id)["sending"] > 0,
    )
    _stop(first, signal.SIGKILL)  # the worker and its pool processes die mid-batch, nothing acknowledged
    killed_at = time.time()
    time.sleep(0.5)  # requests already on the wire land (or not) at the fake
    accepted_before = {to for at, to in rig.posts() if at <= killed_at + 0.5}
    recorded_before = set(_phones(rig, alert_id, "sent"))
    in_doubt = accepted_before - recorded_before  # Twilio has them, our rows do not say so
    in_sending = rig.states(alert_id)["sending"]

    rig.start("worker")
    rig.wait_settled(alert_id, n)

    posts = Counter(to for _, to in rig.posts())
    sent = _phones(rig, alert_id, "sent")
    duplicates = sum(c - 1 for c in posts.values())
    reconciled = {p for p in in_doubt if sent.get(p, 0) >= 2}  # claimed again, found at the provider
    print(
        f"\nkill -9 after {len(accepted_before):,} of {n:,} messages: {in_sending} rows left sending, "
        f"{len(in_doubt)} accepted by the provider but not recorded; {len(reconciled)} of them reconciled "
        f"against the provider's message list; requests {sum(posts.values()):,}, recipients {len(posts):,}, "
        f"duplicates {duplicates}"
    )
    record(
        "fan-out faults",
        f"kill -9 of the worker mid fan-out ({n:,} recipients), then a new worker",
        f"{len(posts):,} of {n:,} reached once, {duplicates} duplicates, {len(in_doubt)} in doubt all reconciled",
        ok=rig.states(alert_id) == Counter({"sent": n})
        and len(posts) == n
        and set(posts) == set(sent)
        and in_sending > 0
        and duplicates == 0
        and reconciled == in_doubt,
    )
    assert rig.states(alert_id) == Counter({"sent": n})
    assert len(posts) == n and set(posts) == set(sent)
    assert in_sending > 0  # the kill did leave rows in doubt
    assert reconciled == in_doubt  # each was claimed again and recorded from the provider's list
    assert duplicates == 0  # the fake always answers its message list, so nothing had to be sent blind


def _private_redis(tmp: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp),
        ],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            return proc
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_redis_restarted_mid_fanout_completes_without_duplicates(tmp_path, pg_url, record) -> None:  # type: ignore[no-untyped-def]
    require_service("redis-server (a private Redis this test kills)", present=shutil.which("redis-server") is not None)
    port = _free_port()
    server = _private_redis(tmp_path, port)
    rig = Rig(tmp_path, pg_url, f"redis://127.0.0.1:{port}/0")
    try:
        n = 5000
        rig.seed(n)
        rig.start("worker")
        rig.start("beat")
        alert_id = rig.approve()
        rig.enqueue_fanout(alert_id)
        rig.wait_for("a fifth of the messages", lambda: len(rig.posts()) >= n // 5)
        _stop(server, signal.SIGKILL)  # no persistence: every queued batch task is gone
        lost_at = len(rig.posts())
        time.sleep(1)
        server = _private_redis(tmp_path, port)
        rig.wait_settled(alert_id, n)
        posts = Counter(to for _, to in rig.posts())
        print(
            f"\nRedis killed after {lost_at:,} of {n:,} messages and restarted empty; requests {sum(posts.values()):,}"
        )
        record(
            "fan-out faults",
            f"Redis killed mid fan-out ({n:,} recipients) and restarted empty",
            f"{len(posts):,} of {n:,} reached, {sum(posts.values()) - len(posts)} duplicates",
            ok=rig.states(alert_id) == Counter({"sent": n}) and len(posts) == n and max(posts.values()) == 1,
        )
        assert rig.states(alert_id) == Counter({"sent": n})
        assert len(posts) == n and max(posts.values()) == 1
    finally:
        rig.close()
        _stop(server)


@pytest.mark.parametrize(
    "rig", [[{"status": 429, "code": 20429}, {"status": 500}]], indirect=True, ids=["429-then-500"]
)
def test_429_then_500_then_success_is_one_message_after_growing_backoff(rig: Rig, record) -> None:
    rig.seed(1)
    rig.start("worker")
    alert_id = rig.approve()
    rig.enqueue_fanout(alert_id)
    rig.wait_settled(alert_id, 1)
    times = [at for at, _ in rig.posts()]
    stored = httpx.get(f"{rig.fake_url}/_stats", timeout=10).json()
    states = rig.states(alert_id)
    with rig.engine.connect() as c:
        row = c.execute(sa.select(Delivery.attempts, Delivery.provider_id).where(Delivery.alert_id == alert_id)).one()
    record(
        "fan-out faults",
        "provider answers 429, then 500, then accepts",
        f"{len(times)} requests, {stored['distinct_to']} message stored",
        ok=len(times) == 3
        and stored["distinct_to"] == 1
        and states == Counter({"sent": 1})
        and row.attempts == 3
        and bool(row.provider_id),
    )
    assert len(times) == 3  # 429, 500, then accepted
    assert stored["distinct_to"] == 1
    assert states == Counter({"sent": 1})
    assert row.attempts == 3 and row.provider_id
    # planning.backoff: 2 s after the first failure, 4 s after the second (lower bounds, not timings).
    assert times[1] - times[0] >= 1.9 and times[2] - times[1] >= 3.9


def test_no_request_leaves_after_the_cancel_is_committed(rig: Rig, record) -> None:
    n = 6000
    rig.seed(n)
    rig.start("worker")
    alert_id = rig.approve()
    rig.enqueue_fanout(alert_id)
    rig.wait_for("the first messages", lambda: len(rig.posts()) >= 1000)
    with session_scope(rig.engine) as s:
        cancel = alerts.create_follow_up(
            s, original_id=alert_id, actor=s.merge(rig.team["operator"]), msg_type=MsgType.CANCEL, reason="uji"
        )
        alerts.submit_alert(s, alert_id=cancel.id, actor=s.merge(rig.team["operator"]))
        alerts.approve_alert(s, alert_id=cancel.id, approver=s.merge(rig.team["approver"]), production=True)
        plan_alert(s, alert_id=cancel.id)  # publishing the Cancel cancels the original
    committed_at = time.time()
    with session_scope(rig.engine) as s:
        assert s.get(Alert, alert_id).state == "cancelled"
    rig.wait_settled(alert_id, n)
    posts = rig.posts()
    after = [at for at, _ in posts if at > committed_at]
    states = rig.states(alert_id)
    print(f"\ncancel committed after {len(posts) - len(after):,} requests; {len(after)} arrived later; rows {states}")
    record(
        "fan-out faults",
        f"Cancel committed mid fan-out ({n:,} recipients)",
        f"{len(after)} in-flight requests arrived after the commit (allowed {WORKERS * CHECK_EVERY}), "
        f"{states['skipped']:,} skipped",
        ok=len(after) <= WORKERS * CHECK_EVERY
        and states["skipped"] > 0
        and states["sent"] + states["skipped"] == n
        and states["sent"] == len(posts),
    )
    # Only what a worker had already handed to the twilio client (one step of each pool process) may arrive.
    assert len(after) <= WORKERS * CHECK_EVERY
    assert states["skipped"] > 0 and states["sent"] + states["skipped"] == n
    assert states["sent"] == len(posts)


def test_an_update_goes_ahead_of_a_routine_alerts_remaining_batches(rig: Rig, record) -> None:
    rig.seed(3000)  # Kota Palu: the routine alert
    rig.seed(50, code="72.03.04.2001", prefix="+62815")  # Donggala: the alert that gets an update
    rig.extra_env["BROADCAST_DISPATCH_BATCH_SIZE"] = "100"
    rig.start("worker", concurrency=1)
    original = rig.approve(codes=["72.03"])
    rig.enqueue_fanout(original)
    rig.wait_settled(original, 50)
    routine = rig.approve(codes=["72.71"])
    rig.enqueue_fanout(routine)
    rig.wait_for("the routine alert under way", lambda: rig.states(routine)["sent"] >= 300)
    with session_scope(rig.engine) as s:
        update = alerts.create_follow_up(
            s, original_id=original, actor=s.merge(rig.team["approver"]), msg_type=MsgType.UPDATE
        )
        alerts.submit_alert(s, alert_id=update.id, actor=s.merge(rig.team["approver"]))
        alerts.approve_alert(s, alert_id=update.id, approver=s.merge(rig.team["admin"]), production=True)
        update_id = update.id
        queue = queue_of(s, alert_id=update_id)
    assert queue == "critical"
    queued_at = time.time()
    rig.enqueue_fanout(update_id, queue=queue)
    rig.wait_settled(update_id, 50)
    rig.wait_settled(routine, 3000)
    posts = rig.posts()
    update_done = max(at for at, to in posts if to.startswith("+62815") and at > queued_at)
    routine_after = sum(1 for at, to in posts if to.startswith("+62813") and at > update_done)
    print(f"\nupdate sent in full while {routine_after:,} of the routine alert's 3,000 messages were still queued")
    record(
        "fan-out faults",
        "Update queued behind 3,000 routine messages",
        f"update done with {routine_after:,} routine messages still to go",
        ok=rig.states(update_id) == Counter({"sent": 50}) and routine_after >= 1500,
    )
    assert rig.states(update_id) == Counter({"sent": 50})
    assert routine_after >= 1500  # it did not wait behind the routine batches queued before it

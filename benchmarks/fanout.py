"""Fan-out throughput through the real Celery worker, PostgreSQL, Redis and the real twilio SDK against a
local fake Twilio (in its own process, answering at once; rate limits switched off).

Three runs in the same session:
  naive  — one Celery task per message (the SDK's messages.create in each task), no bookkeeping;
  ours   — one alert to N subscribers: streamed planning, batch claims, twilio's async client
           (create_async, --concurrency in flight per process), bookkeeping per delivery in PostgreSQL;
  ours, rate-limited — the same with the Twilio limit at --limit msg/s (Redis token buckets).
Each reports messages/s, the time from approval to the first provider request, duplicates/missing and the
most requests the fake saw in any one-second window (all counted by the fake).

    python benchmarks/fanout.py --recipients 100000 --naive 3000 --limited 1500 --limit 100
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BROKER = "redis://127.0.0.1:6379/11"
SECRET = "benchmark-production-secret-key"  # noqa: S105 - a throwaway local value
console = Console(width=200)

FAKE_SCRIPT = """
import sys, time
sys.path.insert(0, {root!r})
from tests.fakes.twilio import FakeTwilio
fake = FakeTwilio(server={server!r}).start()
print(fake.url, fake.account_sid, fake.auth_token, flush=True)
while True:
    time.sleep(3600)
"""

NAIVE_APP = """
import os
from celery import Celery
from twilio.rest import Client
from channels.sms import build_client

app = Celery("naive", broker=os.environ["NAIVE_BROKER"])
app.conf.update(task_acks_late=True, worker_prefetch_multiplier=4, task_ignore_result=True,
                task_default_queue="naive")
_client = None


@app.task(name="naive.send_one")
def send_one(to: str, body: str) -> None:
    global _client
    if _client is None:
        _client = build_client(os.environ["FAKE_SID"], os.environ["FAKE_TOKEN"], api_base_url=os.environ["FAKE_URL"])
    _client.messages.create(to=to, messaging_service_sid="MG" + "a" * 32, body=body)
"""


class CpuMeter:
    """CPU time (user + system, seconds) each group of processes used between `start()` and `stop()`:
    the fake Twilio, the Celery worker tree (its main process and pool children, reaped ones included), the
    PostgreSQL backends connected to the benchmark's database (minus the benchmark's own progress polling),
    Redis and PostgreSQL's auxiliary processes (whole servers, shared with anything else on the machine)."""

    def __init__(self, *, fake_pid: int, worker_pid: int, db_name: str | None = None, poll_pid: int | None = None):
        self.fake_pid, self.worker_pid, self.db_name, self.poll_pid = fake_pid, worker_pid, db_name, poll_pid
        self.before: dict[str, dict[int, float]] = {}
        self.wall = 0.0

    @staticmethod
    def _cpu(p: psutil.Process) -> float:
        t = p.cpu_times()
        return t.user + t.system

    def sample(self) -> dict[str, dict[int, float]]:
        groups: dict[str, dict[int, float]] = {k: {} for k in ("fake", "main", "pool", "pg", "poll", "redis", "pg aux")}
        try:
            groups["fake"][self.fake_pid] = self._cpu(psutil.Process(self.fake_pid))
            root = psutil.Process(self.worker_pid)
            times = root.cpu_times()
            groups["main"][self.worker_pid] = times.user + times.system
            groups["pool"][self.worker_pid] = times.children_user + times.children_system  # pool processes reaped
            for child in root.children(recursive=True):
                groups["pool"][child.pid] = self._cpu(child)
        except psutil.NoSuchProcess:
            pass
        for p in psutil.process_iter(["name", "cmdline"]):
            try:
                name, cmd = p.info["name"] or "", " ".join(p.info["cmdline"] or [])
                if name.startswith("redis-server"):
                    groups["redis"][p.pid] = self._cpu(p)
                elif name == "postgres":
                    # A backend reads "postgres: 15/main: <user> <database> <host(port)> <state>".
                    parts = cmd.split()
                    if len(parts) >= 5 and "(" in parts[4]:
                        if parts[3] == self.db_name:
                            groups["poll" if p.pid == self.poll_pid else "pg"][p.pid] = self._cpu(p)
                    else:
                        groups["pg aux"][p.pid] = self._cpu(p)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return groups

    def start(self) -> None:
        self.before, self.wall = self.sample(), time.monotonic()

    def stop(self) -> dict[str, float]:
        after, wall = self.sample(), time.monotonic() - self.wall
        used = {
            group: sum(t - self.before.get(group, {}).get(pid, 0.0) for pid, t in pids.items())
            for group, pids in after.items()
        }
        used["wall"] = wall
        return used


FAKE_SERVER = "asyncio"  # --fake


def start_fake() -> tuple[subprocess.Popen[str], str, str, str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", FAKE_SCRIPT.format(root=str(ROOT), server=FAKE_SERVER)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    url, sid, token = proc.stdout.readline().split()
    return proc, url, sid, token


def wait_ready(broker: str, timeout: float = 120.0) -> None:
    """Until a worker answers a ping (its pool has started), then a moment for the pool processes to connect."""
    from celery import Celery

    app = Celery(broker=broker)
    deadline = time.monotonic() + timeout
    try:
        while not app.control.ping(timeout=0.5):
            if time.monotonic() > deadline:
                raise RuntimeError("no worker answered")
    finally:
        app.close()
    time.sleep(2)


def stats(url: str) -> dict[str, object]:
    return httpx.get(f"{url}/_stats", timeout=60).json()


def make_db() -> str:
    name = f"bench_fanout_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return str(sa.make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False))


def drop_db(url: str) -> None:
    name = sa.make_url(url).database
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def seed(db_url: str, n: int, person: Callable[[int], dict[str, object]] | None = None) -> None:
    """The team and n active SMS subscribers in Palu (+62813 and eight digits), `person(i)` overriding fields."""
    from broadcast import migrate
    from broadcast.db import make_engine, session_scope
    from tests.factories import make_team

    migrate.upgrade(db_url)
    engine = make_engine(db_url)
    with session_scope(engine) as s:
        make_team(s)
    rows = [
        {
            "phone": f"+62813{i:08d}",
            "language": "id",
            "admin_code": "72.71.01.1004",
            "active": True,
            "channels": ["sms"],
        }
        | (person(i) if person else {})
        for i in range(n)
    ]
    from broadcast.subscribers.models import Subscriber

    with engine.begin() as conn:
        for start in range(0, n, 10_000):
            conn.execute(sa.insert(Subscriber.__table__), rows[start : start + 10_000])
    engine.dispose()


def worker_env(
    db_url: str, fake_url: str, sid: str, token: str, *, rate: float | None = None, concurrency: int = 48
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROADCAST_")}
    env.update(
        BROADCAST_ENVIRONMENT="production",
        BROADCAST_SECRET_KEY=SECRET,
        BROADCAST_DATABASE_URL=db_url,
        BROADCAST_BROKER_URL=BROKER,
        BROADCAST_ENABLED_CHANNELS='["sms"]',
        BROADCAST_TWILIO__ACCOUNT_SID=sid,
        BROADCAST_TWILIO__AUTH_TOKEN=token,
        BROADCAST_TWILIO__MESSAGING_SERVICE_SID="MG" + "a" * 32,
        BROADCAST_TWILIO__API_BASE_URL=fake_url,
        # The account cap, and the Messaging Service's own bucket at the same rate: both off (huge) by default,
        # both at --limit in the limited run, so the provider never sees more than --limit requests in a second.
        BROADCAST_TWILIO__RATE_PER_SECOND=str(rate or 1_000_000),
        BROADCAST_TWILIO__MESSAGING_SERVICE_RATE=str(rate or 1_000_000),
        BROADCAST_TWILIO__MAX_CONCURRENCY=str(concurrency),
        PYTHONPATH=str(ROOT),
    )
    return env


def run_ours(n: int, workers: int, *, rate: float | None = None, concurrency: int = 48) -> dict[str, float]:
    fake, fake_url, sid, token = start_fake()
    db_url = make_db()
    worker = None
    try:
        seed(db_url, n)
        env = worker_env(db_url, fake_url, sid, token, rate=rate, concurrency=concurrency)
        os.environ.update({k: v for k, v in env.items() if k.startswith("BROADCAST_")})
        import redis

        redis.Redis.from_url(BROKER).flushdb()
        worker = subprocess.Popen(
            [sys.executable, "-m", "broadcast.cli", "worker", "--concurrency", str(workers), "--loglevel", "WARNING"],
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_ready(BROKER)
        from broadcast import events
        from broadcast.alerts import service as alerts
        from broadcast.alerts.models import Alert
        from broadcast.alerts.schemas import AlertCreate
        from broadcast.db import make_engine, session_factory
        from broadcast.dispatch.models import Delivery
        from broadcast.users.models import User
        from broadcast.worker import celery
        from tests.factories import alert_payload

        engine = make_engine(db_url)
        # Progress is polled on one connection of its own, whose backend's CPU is reported apart.
        poll = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        meter = CpuMeter(
            fake_pid=fake.pid,
            worker_pid=worker.pid,
            db_name=sa.make_url(db_url).database,
            poll_pid=poll.scalar(sa.text("SELECT pg_backend_pid()")),
        )
        meter.start()
        with session_factory(engine)() as s:
            team = {u.username: u for u in s.scalars(sa.select(User))}
            payload = alert_payload("Actual")
            payload["channels"] = ["sms"]
            alert = alerts.create_alert(s, data=AlertCreate(**payload), author=team["op.palu"], sender="bpbd@palu")
            alerts.submit_alert(s, alert_id=alert.id, actor=team["op.palu"])
            alerts.approve_alert(s, alert_id=alert.id, approver=team["apv.sulteng"], production=True)
            alerts.start_delivery(s, alert=alert)  # the approve route's AlertApproved: the fan-out in the outbox
            s.commit()
            approved_at = time.time()
            events.send_committed(s, app=celery)
        done_states = ("sent", "delivered", "failed", "skipped")
        done_q = sa.select(sa.func.count()).select_from(Delivery).where(Delivery.state.in_(done_states))
        while poll.scalar(done_q) < n:
            time.sleep(0.25)
        cpu = meter.stop()
        finished_at = time.time()
        # When the worker's planning published the alert: the queue and pickup part of approval → first request.
        published = poll.scalar(sa.select(Alert.published_at).where(Alert.id == alert.id))
        poll.close()
        engine.dispose()
        st = stats(fake_url)
        return {
            "messages": n,
            "seconds": finished_at - approved_at,
            "rate": n / (finished_at - approved_at),
            "first_request_ms": (float(st["first_at"]) - approved_at) * 1000,
            "published_ms": (published.timestamp() - approved_at) * 1000,
            "posts": st["posts"],
            "duplicates": int(st["posts"]) - int(st["distinct_to"]),
            "missing": n - int(st["distinct_to"]),
            "max_in_any_second": st["max_in_any_second"],
            "cpu": cpu,
        }
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=60)
        os.killpg(fake.pid, signal.SIGTERM)
        drop_db(db_url)


def run_naive(n: int, workers: int) -> dict[str, float]:
    fake, fake_url, sid, token = start_fake()
    app_dir = Path(tempfile.mkdtemp(prefix="naive_"))
    (app_dir / "naive_app.py").write_text(NAIVE_APP)
    env = {
        **os.environ,
        "NAIVE_BROKER": BROKER,
        "FAKE_URL": fake_url,
        "FAKE_SID": sid,
        "FAKE_TOKEN": token,
        "PYTHONPATH": f"{app_dir}:{ROOT}",
    }
    import redis

    redis.Redis.from_url(BROKER).flushdb()
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "naive_app",
            "worker",
            "-Q",
            "naive",
            "--concurrency",
            str(workers),
            "--loglevel",
            "WARNING",
        ],
        env=env,
        cwd=app_dir,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(BROKER)
        sys.path.insert(0, str(app_dir))
        os.environ.update({"NAIVE_BROKER": BROKER})
        import naive_app

        meter = CpuMeter(fake_pid=fake.pid, worker_pid=worker.pid)
        meter.start()
        started = time.time()
        for i in range(n):
            naive_app.send_one.delay(f"+62814{i:08d}", "[TEST] Banjir di Kota Palu. Segera mengungsi.")
        while int(stats(fake_url)["posts"]) < n:
            time.sleep(0.25)
        finished = time.time()
        cpu = meter.stop()
        st = stats(fake_url)
        return {
            "messages": n,
            "seconds": finished - started,
            "rate": n / (finished - started),
            "first_request_ms": (float(st["first_at"]) - started) * 1000,
            "posts": st["posts"],
            "duplicates": int(st["posts"]) - int(st["distinct_to"]),
            "missing": n - int(st["distinct_to"]),
            "max_in_any_second": st["max_in_any_second"],
            "cpu": cpu,
        }
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
        os.killpg(fake.pid, signal.SIGTERM)


def cpu_table(runs: list[tuple[str, dict]]) -> Table:
    """Where the CPU went during each run, in ms per message: what the fan-out itself costs (our worker and
    its PostgreSQL backends) apart from the fake provider and the shared servers."""
    table = Table(title="CPU time per message (user + system, ms/msg; load average " + load() + ")")
    cols = (
        "run",
        "Celery main",
        "pool processes",
        "PG backends",
        "fan-out",
        "fake",
        "Redis*",
        "PG aux*",
        "polling",
        "ceiling: fan-out",
        "with fake",
    )
    for col in cols:
        table.add_column(col, justify="right" if col != "run" else "left")
    for name, r in runs:
        cpu, n = r["cpu"], r["messages"]
        per = {k: 1000 * v / n for k, v in cpu.items() if k != "wall"}
        own = per["main"] + per["pool"] + per["pg"]
        table.add_row(
            name,
            f"{per['main']:.3f}",
            f"{per['pool']:.3f}",
            f"{per['pg']:.3f}",
            f"{own:.3f}",
            f"{per['fake']:.3f}",
            f"{per['redis']:.3f}",
            f"{per['pg aux']:.3f}",
            f"{per['poll']:.3f}",
            f"{2000 / own:,.0f} msg/s" if own else "-",
            f"{2000 / (own + per['fake']):,.0f} msg/s" if own else "-",
        )
    table.caption = (
        "Celery main: the worker's consumer process; pool processes: planning, claims, twilio SDK, bookkeeping; "
        "PG backends: the worker's PostgreSQL connections; fan-out = the three; fake: the fake Twilio process; "
        "* whole server, shared with anything else running; polling: the benchmark's own progress query; "
        "ceilings: 2 cores / CPU per message, for the fan-out alone and with the fake on the same cores"
    )
    return table


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--naive", type=int, default=3_000, help="messages for the naive baseline")
    parser.add_argument("--limited", type=int, default=1_500, help="recipients of the rate-limited run (0: skip)")
    parser.add_argument("--limit", type=float, default=100.0, help="Twilio limit (msg/s) of the rate-limited run")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (this machine has 2 cores)")
    parser.add_argument("--concurrency", type=int, default=48, help="requests in flight per worker process")
    parser.add_argument(
        "--fake",
        choices=("asyncio", "threaded"),
        default="asyncio",
        help="the fake Twilio's server: asyncio (aiohttp, cheap per request) or threaded (http.server, as in tests)",
    )
    args = parser.parse_args()
    global FAKE_SERVER
    FAKE_SERVER = args.fake
    sys.path.insert(0, str(ROOT))
    console.print(f"load average at start: {load()} (this machine: {os.cpu_count()} cores); fake: {args.fake}")
    naive = run_naive(args.naive, args.workers)
    ours = run_ours(args.recipients, args.workers, concurrency=args.concurrency)
    runs = [("naive: one task per message, no bookkeeping", naive), ("ours: batches + bookkeeping", ours)]
    if args.limited:
        limited = run_ours(args.limited, args.workers, rate=args.limit, concurrency=args.concurrency)
        runs.append((f"ours, Twilio limit {args.limit:,.0f} msg/s", limited))
    table = Table(title="Fan-out to SMS through the real worker (PostgreSQL + Redis, twilio SDK → local fake)")
    cols = ("run", "messages", "seconds", "msg/s", "approval → first request", "max req. in any 1 s", "dup", "missing")
    for col in cols:
        table.add_column(col, justify="right" if col != "run" else "left")
    for name, r in runs:
        table.add_row(
            name,
            f"{r['messages']:,}",
            f"{r['seconds']:.1f}",
            f"{r['rate']:,.0f}",
            f"{r['first_request_ms']:.0f} ms"
            + (f" (planning from {r['published_ms']:.0f} ms)" if "published_ms" in r else ""),
            f"{r['max_in_any_second']:,}",
            str(r["duplicates"]),
            str(r["missing"]),
        )
    console.print(table)
    console.print(cpu_table(runs))
    console.print(
        f"ours / naive: {ours['rate'] / naive['rate']:.1f}×  (goals: ≥ 3,000 msg/s, ≥ 10× naive, "
        f"first request < 500 ms, 0 duplicates, 0 missing, ≤ {args.limit:,.0f} requests in any second when limited)"
    )
    print(json.dumps({name: r for name, r in runs}))


if __name__ == "__main__":
    main()

"""Load on 127.0.0.1: operators, public page readers and report senders at once, against uvicorn.

Starts uvicorn (the real app, `--workers N` processes) on a fresh database (SQLite file by default, or
--database-url for PostgreSQL) with Redis as broker, seeds a team and published alerts, then runs a locust
scenario in-process for --seconds: operators (sign in once, list, read, preview and write draft alerts),
public readers (home, alert page, area page, Atom feed, JSON API) and report senders (signed Twilio inbound
SMS "LAPOR ..."). Prints throughput and p50/p99 per route, and the reports stored vs sent (none lost).

    pip install -e '.[load]'
    python benchmarks/load.py --seconds 30 --users 60
    python benchmarks/load.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_load
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PASSWORD = "load-test-password-2026"  # noqa: S105 - a throwaway password for a throwaway database
TWILIO_TOKEN = "load-test-twilio-token"  # noqa: S105
OPERATORS = 8


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed(database_url: str) -> dict[str, object]:
    """Schema, users and a few published Exercise alerts; runs in a child process (before gevent patches)."""
    from broadcast import migrate
    from broadcast.alerts import service as alerts
    from broadcast.alerts.schemas import AlertCreate
    from broadcast.db import make_engine, session_scope
    from broadcast.dispatch.plan import plan_alert
    from broadcast.users import service as users
    from broadcast.users.models import Role
    from tests.factories import alert_payload

    migrate.upgrade(database_url)
    engine = make_engine(database_url)
    identifiers = []
    with session_scope(engine) as s:
        ops = [
            users.create_user(
                s,
                username=f"op{i}",
                full_name=f"Operator {i}",
                password=PASSWORD,
                role=Role.OPERATOR,
                jurisdiction="72.71",
                actor_id=None,
            )
            for i in range(OPERATORS)
        ]
        apv = users.create_user(
            s,
            username="apv",
            full_name="Approver",
            password=PASSWORD,
            role=Role.APPROVER,
            jurisdiction="72",
            actor_id=None,
        )
        for n in range(5):
            payload = alert_payload("Exercise")
            payload["infos"][0]["headline"] = f"Latihan banjir {n}"
            alert = alerts.create_alert(s, data=AlertCreate(**payload), author=ops[0], sender="bpbd@palu")
            alerts.submit_alert(s, alert_id=alert.id, actor=ops[0])
            alerts.approve_alert(s, alert_id=alert.id, approver=apv, production=False)
            plan_alert(s, alert_id=alert.id)
            identifiers.append(alert.identifier)
    engine.dispose()
    return {"identifiers": identifiers, "operators": [f"op{i}" for i in range(OPERATORS)]}


def count_reports(database_url: str) -> int:
    import sqlalchemy as sa

    engine = sa.create_engine(database_url)
    with engine.connect() as c:
        n = int(c.scalar(sa.text("SELECT count(*) FROM reports")) or 0)
    engine.dispose()
    return n


def run_locust(base: str, seeded: dict[str, object], *, users: int, seconds: float, public_base: str) -> dict:
    import gevent  # locust brings gevent; import it only in this process
    from locust import HttpUser, between, task
    from locust.env import Environment
    from twilio.request_validator import RequestValidator

    from tests.factories import alert_payload

    identifiers = list(seeded["identifiers"])  # type: ignore[call-overload]
    operators = list(seeded["operators"])  # type: ignore[call-overload]
    validator = RequestValidator(TWILIO_TOKEN)
    sent = {"reports": 0, "acknowledged": 0}

    class Operator(HttpUser):
        weight = 1
        wait_time = between(0.5, 1.5)

        def on_start(self) -> None:
            name = operators[id(self) % len(operators)]
            r = self.client.post(
                "/api/v1/auth/login", json={"username": name, "password": PASSWORD}, name="POST /api/v1/auth/login"
            )
            self.client.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
            self.alert_id = None

        @task(4)
        def list_alerts(self) -> None:
            r = self.client.get("/api/v1/alerts?limit=20", name="GET /api/v1/alerts")
            if r.ok and r.json():
                self.alert_id = r.json()[0]["id"]

        @task(2)
        def read_alert(self) -> None:
            if self.alert_id:
                self.client.get(f"/api/v1/alerts/{self.alert_id}", name="GET /api/v1/alerts/{id}")
                self.client.get(f"/api/v1/alerts/{self.alert_id}/deliveries", name="GET /api/v1/alerts/{id}/deliveries")

        @task(1)
        def preview(self) -> None:
            if self.alert_id:
                self.client.get(f"/api/v1/alerts/{self.alert_id}/preview", name="GET /api/v1/alerts/{id}/preview")

        @task(1)
        def write_draft(self) -> None:
            self.client.post("/api/v1/alerts", json=alert_payload("Exercise"), name="POST /api/v1/alerts")

    class PublicReader(HttpUser):
        weight = 6
        wait_time = between(0.2, 1.0)

        @task(3)
        def home(self) -> None:
            self.client.get("/", name="GET /")

        @task(3)
        def alert_page(self) -> None:
            ident = identifiers[int(time.time() * 1000) % len(identifiers)]
            self.client.get(f"/peringatan/{ident}", name="GET /peringatan/{identifier}")

        @task(1)
        def area(self) -> None:
            self.client.get("/wilayah/72.71", name="GET /wilayah/{code}")

        @task(2)
        def feed(self) -> None:
            self.client.get("/feed/latihan.xml", name="GET /feed/latihan.xml")

        @task(2)
        def json_api(self) -> None:
            self.client.get("/api/public/alerts?status=Exercise", name="GET /api/public/alerts")

    class ReportSender(HttpUser):
        weight = 3
        wait_time = between(0.2, 1.0)

        @task
        def send_report(self) -> None:
            sent["reports"] += 1
            n = sent["reports"]
            form = {
                "MessageSid": f"SM{n:032d}",
                "From": f"+62812{n:07d}",
                "To": "+6281100000000",
                "Body": f"LAPOR banjir setinggi lutut di RT {n % 20} Kelurahan Lere",
                "AccountSid": "AC" + "0" * 32,
            }
            path = "/webhooks/twilio/inbound"
            sig = validator.compute_signature(public_base + path, form)
            with self.client.post(
                path,
                data=form,
                headers={"X-Twilio-Signature": sig},
                name="POST /webhooks/twilio/inbound (LAPOR)",
                catch_response=True,
            ) as r:
                if r.status_code != 200:
                    r.failure(f"{r.status_code}")
                else:
                    sent["acknowledged"] += 1

    env = Environment(user_classes=[Operator, PublicReader, ReportSender], host=base)
    runner = env.create_local_runner()
    runner.start(users, spawn_rate=max(users / 5, 1))
    gevent.sleep(seconds)
    runner.quit()
    rows = []
    for entry in sorted(env.stats.entries.values(), key=lambda e: e.name):
        rows.append(
            {
                "route": entry.name,
                "requests": entry.num_requests,
                "failures": entry.num_failures,
                "rps": entry.num_requests / seconds,
                "p50_ms": entry.get_response_time_percentile(0.5) or 0,
                "p99_ms": entry.get_response_time_percentile(0.99) or 0,
            }
        )
    total = env.stats.total
    return {
        "rows": rows,
        "total": {
            "requests": total.num_requests,
            "failures": total.num_failures,
            "rps": total.num_requests / seconds,
            "p99_ms": total.get_response_time_percentile(0.99) or 0,
        },
        "reports_sent": sent["reports"],
        "reports_acknowledged": sent["acknowledged"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--users", type=int, default=60, help="simulated users (1 operator : 6 readers : 3 senders)")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--database-url", default="", help="default: a SQLite file in a temporary folder")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11")
    parser.add_argument("--seed-only", default="", help=argparse.SUPPRESS)
    parser.add_argument("--locust", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed_only:
        print(json.dumps(seed(args.seed_only)))
        return
    if args.locust:
        spec = json.loads(args.locust)
        print(
            json.dumps(
                run_locust(
                    spec["base"], spec["seeded"], users=args.users, seconds=args.seconds, public_base=spec["public"]
                )
            )
        )
        return

    from rich.console import Console
    from rich.table import Table

    tmp = Path(tempfile.mkdtemp(prefix="broadcast-load-"))
    db = args.database_url or f"sqlite:///{tmp / 'load.sqlite3'}"
    if args.database_url.startswith("postgresql"):
        import sqlalchemy as sa

        admin = sa.create_engine(sa.make_url(db).set(database="postgres"), isolation_level="AUTOCOMMIT")
        name = sa.make_url(db).database
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            c.execute(sa.text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
    here = [sys.executable, __file__]
    seeded = json.loads(
        subprocess.run(
            [*here, "--seed-only", db],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "BROADCAST_BROKER_URL": args.redis_url},
        ).stdout
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROADCAST_")}
    env.update(
        {
            "BROADCAST_ENVIRONMENT": "staging",
            "BROADCAST_DATABASE_URL": db,
            "BROADCAST_BROKER_URL": args.redis_url,
            "BROADCAST_SECRET_KEY": "load-test-secret-key-0123456789abcdef",
            "BROADCAST_PUBLIC_BASE_URL": base,
            "BROADCAST_TWILIO__WEBHOOK_TEST_TOKEN": TWILIO_TOKEN,
            "BROADCAST_LOG_LEVEL": "WARNING",
        }
    )
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "broadcast.api.asgi:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(args.workers),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env=env,
        start_new_session=True,
    )
    try:
        import httpx

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        before = count_reports(db)
        spec = json.dumps({"base": base, "seeded": seeded, "public": base})
        out = subprocess.run(
            [*here, "--locust", spec, "--users", str(args.users), "--seconds", str(args.seconds)],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        stored = count_reports(db) - before
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    backend = "PostgreSQL" if db.startswith("postgresql") else "SQLite"
    table = Table(title=f"load: {args.users} users for {args.seconds:.0f} s, uvicorn x{args.workers}, {backend}")
    for col in ("route", "requests", "failures", "req/s", "p50 ms", "p99 ms"):
        table.add_column(col, justify="left" if col == "route" else "right")
    for r in result["rows"]:
        table.add_row(
            r["route"],
            str(r["requests"]),
            str(r["failures"]),
            f"{r['rps']:.1f}",
            f"{r['p50_ms']:.0f}",
            f"{r['p99_ms']:.0f}",
        )
    t = result["total"]
    table.add_row(
        "[bold]all[/bold]", str(t["requests"]), str(t["failures"]), f"{t['rps']:.1f}", "", f"{t['p99_ms']:.0f}"
    )
    console = Console(width=110)
    console.print(table)
    acked = result["reports_acknowledged"]
    # Requests cut off when the run stops may still be stored: lost = acknowledged with 200 but not stored.
    console.print(
        f"reports sent {result['reports_sent']}, acknowledged (200) {acked}, stored {stored}, "
        f"lost {max(acked - stored, 0)}"
    )


if __name__ == "__main__":
    main()

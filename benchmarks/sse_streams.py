"""/healthz latency while many server-sent event streams are open (issue 22).

Starts the API under uvicorn (one process) on a fresh PostgreSQL database, opens --streams event streams (half the
live report feed, half one alert's progress), and times /healthz: with no stream open (baseline) and with all of
them open (ours). Before the shared SSE loop, each stream held a database session and a worker thread for its whole
life: 16 streams exhausted the pool and /healthz took 27–60 s (issue 22); a stream now holds neither.

    python benchmarks/sse_streams.py --streams 200 [--baseline /path/to/an/older/checkout]

With --baseline, the API is also run from that checkout (PYTHONPATH) against the same database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
QUIET = ["--log-level", "warning"]
SECRET = "benchmark-sse-secret-key-0123456789"  # noqa: S105 - a throwaway local value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare(db_url: str) -> tuple[int, int]:
    """Migrate, add the test team and one approved alert; returns (analyst id, alert id)."""
    from broadcast import migrate
    from broadcast.alerts import service as alerts
    from broadcast.alerts.schemas import AlertCreate
    from broadcast.db import make_engine, session_scope
    from tests.factories import alert_payload, make_team

    migrate.upgrade(db_url)
    engine = make_engine(db_url)
    with session_scope(engine) as s:
        team = make_team(s)
        alert = alerts.create_alert(
            s, data=AlertCreate(**alert_payload("Exercise")), author=team["operator"], sender="bench"
        )
        alerts.submit_alert(s, alert_id=alert.id, actor=team["operator"])
        alerts.approve_alert(s, alert_id=alert.id, approver=team["approver"], production=False)
        ids = team["analyst"].id, alert.id
    engine.dispose()
    return ids


async def healthz_ms(client: httpx.AsyncClient, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = await client.get("/healthz", timeout=120)
        out.append((time.perf_counter() - t0) * 1000 if r.status_code == 200 else float("inf"))
        await asyncio.sleep(0.1)
    return out


async def run(
    base: str, headers: dict[str, str], streams: int, alert_id: int, probes: int, open_timeout_s: float
) -> dict[str, list[float]]:
    limits = httpx.Limits(max_connections=streams + 20, max_keepalive_connections=streams + 20)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=httpx.Timeout(300.0)) as client:
        results = {"no stream open": await healthz_ms(client, probes)}
        opened, ready, release = 0, asyncio.Event(), asyncio.Event()

        async def one(i: int) -> None:
            nonlocal opened
            path = f"/api/v1/alerts/{alert_id}/progress/stream" if i % 2 else "/api/v1/reports/stream"
            async with client.stream("GET", path, headers=headers) as r:
                async for _line in r.aiter_lines():
                    break
                opened += 1
                if opened == streams:
                    ready.set()
                await release.wait()

        t0 = time.perf_counter()
        tasks = [asyncio.create_task(one(i)) for i in range(streams)]
        try:
            await asyncio.wait_for(ready.wait(), timeout=open_timeout_s)
            results["opening every stream"] = [(time.perf_counter() - t0) * 1000]
            results[f"{streams} streams open"] = await healthz_ms(client, probes)
        except TimeoutError:
            results[f"opening every stream (only {opened} in {open_timeout_s:.0f} s)"] = [float("inf")]
            label = f"{opened} streams open (inf: /healthz failed)"
            try:
                results[label] = await healthz_ms(client, 1)
            except httpx.HTTPError:
                results[label] = [float("inf")]
        finally:
            release.set()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--probes", type=int, default=20)
    parser.add_argument("--baseline", type=Path, default=None, help="an older checkout to compare with")
    parser.add_argument("--open-timeout", type=float, default=120.0, help="seconds to wait for every stream")
    args = parser.parse_args()
    name = f"bench_sse_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    db_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    serve = None
    runs: dict[str, dict[str, list[float]]] = {}
    try:
        analyst_id, alert_id = prepare(db_url)
        from broadcast.users.security import issue_token

        headers = {"Authorization": f"Bearer {issue_token(SECRET, user_id=analyst_id, token_version=0)}"}
        env = {k: v for k, v in os.environ.items() if not k.startswith("BROADCAST_")}
        env |= {"BROADCAST_DATABASE_URL": db_url, "BROADCAST_SECRET_KEY": SECRET, "BROADCAST_ENVIRONMENT": "test"}
        codes = [("ours", ROOT)] + ([("baseline", args.baseline.resolve())] if args.baseline else [])
        for which, code in codes:
            port = free_port()
            serve = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "broadcast.api.asgi:app", "--port", str(port), *QUIET],
                cwd=code,
                env=env | {"PYTHONPATH": str(code)},
                start_new_session=True,
            )
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("the API did not start")
                time.sleep(0.2)
            runs[which] = asyncio.run(run(base, headers, args.streams, alert_id, args.probes, args.open_timeout))
            serve.send_signal(signal.SIGTERM)
            try:
                serve.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(serve.pid, signal.SIGKILL)
                serve.wait()
            serve = None
    finally:
        if serve is not None:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait()
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    table = Table(title=f"/healthz while {args.streams} SSE streams are open (uvicorn, PostgreSQL)")
    for col in ("code", "when", "p50 ms", "max ms"):
        table.add_column(col, justify="left" if col in ("code", "when") else "right")
    for which, results in runs.items():
        for when, values in results.items():
            table.add_row(which, when, f"{statistics.median(values):.1f}", f"{max(values):.1f}")
    Console(width=160).print(table)
    print("Issue 22 measured the code before the shared loop: 16 streams, /healthz 27–60 s.")


if __name__ == "__main__":
    main()

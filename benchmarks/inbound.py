"""Report intake under a flood spike, then enrichment catching up, then the geoparser against coordinates.

1. intake  — the real app under uvicorn (its own processes) on PostgreSQL + Redis; N partner reports
             (PetaBencana texts, unique ids) POSTed to /api/v1/reports over keep-alive connections from an
             asyncio client: reports/s, p50/p99 latency, errors, and lost = posted - rows stored.
2. enrich  — a real Celery worker (`broadcast worker`) started afterwards: time until no report waits.
3. geocode — the PetaBencana reports whose coordinates fall in a DKI Jakarta kecamatan: share whose text alone
             gives the coordinates' kecamatan, ours (geo.geoparse, markers, fuzzy, agreement) vs the naive
             baseline (first exact kecamatan name in the text), same run.

    python benchmarks/inbound.py --reports 5000 --concurrency 64
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from broadcast import migrate  # noqa: E402
from broadcast.reports import petabencana  # noqa: E402
from geo import boundaries, geoparse  # noqa: E402

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BROKER = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7")
API_KEY = "benchmark-partner-key"
console = Console(width=140)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def create_db() -> tuple[str, str]:
    name = f"bcast_inbound_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
    migrate.upgrade(url)
    return name, url


def drop_db(name: str) -> None:
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def child_env(db_url: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROADCAST_")}
    env.update(
        BROADCAST_ENVIRONMENT="test",
        BROADCAST_DATABASE_URL=db_url,
        BROADCAST_BROKER_URL=BROKER,
        BROADCAST_DATA_DIR=str(data_dir),
        BROADCAST_REPORT_API_KEYS=json.dumps({"bench": API_KEY}),
        BROADCAST_REPORTS_GEOPARSE_WITHIN="31",
        PYTHONPATH=str(ROOT),
    )
    return env


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_healthy(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"uvicorn exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("uvicorn did not become healthy")


def request_bytes(port: int, body: bytes) -> bytes:
    head = (
        f"POST /api/v1/reports HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"X-API-Key: {API_KEY}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next((int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:")), 0)
    if length:
        await reader.readexactly(length)
    return status


async def fire(port: int, bodies: list[bytes], concurrency: int) -> tuple[list[float], dict[int, int], float]:
    """POST every body over `concurrency` keep-alive connections; latencies in ms, status counts, wall time."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while True:
                try:
                    body = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                t0 = time.perf_counter()
                writer.write(request_bytes(port, body))
                try:
                    status = await read_response(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    status = 0
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                latencies.append((time.perf_counter() - t0) * 1000)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    start_t = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, statuses, time.perf_counter() - start_t


def cpu_seconds(root_pid: int) -> float:
    """CPU time (user + system) of a process and its direct children, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry.name), int(fields[1])
        if pid == root_pid or ppid == root_pid:
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def stored_rows(db_url: str, run: str) -> int:
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    with engine.connect() as c:
        return int(
            c.scalar(sa.text("SELECT count(*) FROM reports WHERE external_id LIKE :p"), {"p": f"partner:bench:{run}-%"})
        )


def waiting(db_url: str) -> tuple[int, int, int]:
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    with engine.connect() as c:
        rows = dict(c.execute(sa.text("SELECT processing, count(*) FROM reports GROUP BY processing")).all())
    return rows.get("pending", 0) + rows.get("working", 0), rows.get("failed", 0), rows.get("done", 0)


def geocoder_accuracy() -> dict[str, float]:
    items = petabencana.load_reports()
    truth = boundaries.codes_at(
        np.array([r.lon for r in items]),
        np.array([r.lat for r in items]),
        "kecamatan",
    )
    ours = naive = guessed_ours = guessed_naive = total = 0
    for item, code in zip(items, truth, strict=True):
        if not str(code).startswith("31."):
            continue
        total += 1
        parsed = geoparse.parse_location(item.text, within="31")
        base = geoparse.naive_kecamatan(item.text, within="31")
        guessed_ours += parsed.kecamatan is not None
        guessed_naive += base is not None
        ours += parsed.kecamatan == code
        naive += base == code
    return {
        "total": total,
        "ours": ours,
        "naive": naive,
        "guessed_ours": guessed_ours,
        "guessed_naive": guessed_naive,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--api-workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--enrich-timeout", type=float, default=900)
    args = parser.parse_args()

    import redis

    redis.Redis.from_url(BROKER).flushdb()
    name, db_url = create_db()
    data_dir = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    env = child_env(db_url, data_dir)
    port = free_port()
    api = start(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "broadcast.api.asgi:app",
            "--port",
            str(port),
            "--workers",
            str(args.api_workers),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env,
        data_dir / "api.log",
    )
    worker = None
    try:
        wait_healthy(port, api)
        run = uuid.uuid4().hex[:6]
        items = petabencana.load_reports()
        bodies = []
        for i in range(args.reports):
            item = items[i % len(items)]
            payload = {
                "text": item.text or "banjir",
                "external_id": f"{run}-{i}",
                "lat": item.lat,
                "lon": item.lon,
                "author": f"pb-{i % 400}",
                "hazard": "banjir",
            }
            bodies.append(json.dumps(payload).encode())
        # warm-up (connections, imports, first queries) is not measured
        asyncio.run(
            fire(
                port,
                [json.dumps({"text": "warm-up banjir", "external_id": f"w{run}-{i}"}).encode() for i in range(200)],
                8,
            )
        )
        cpu_before, load_before = cpu_seconds(api.pid), os.getloadavg()[0]
        latencies, statuses, wall = asyncio.run(fire(port, bodies, args.concurrency))
        api_cpu = cpu_seconds(api.pid) - cpu_before
        stored = stored_rows(db_url, run)
        latencies.sort()
        p50 = statistics.median(latencies)
        p99 = latencies[int(len(latencies) * 0.99) - 1]
        rate = len(bodies) / wall

        console.print("enrichment: starting a real worker (broadcast worker --concurrency 2)")
        t0 = time.monotonic()
        worker = start(
            [sys.executable, "-m", "broadcast.cli", "worker", "--concurrency", "2"], env, data_dir / "worker.log"
        )
        subprocess.run(
            [
                sys.executable,
                "-c",
                "from broadcast.reports.tasks import enrich_pending as t; [t.delay() for _ in range(2)]",
            ],
            env=env,
            check=True,
        )
        left, failed, done = waiting(db_url)
        while left and time.monotonic() - t0 < args.enrich_timeout:
            time.sleep(1)
            left, failed, done = waiting(db_url)
        enrich_s = time.monotonic() - t0
    finally:
        if worker is not None:
            stop(worker)
        stop(api)

    acc = geocoder_accuracy()
    table = Table(
        title=f"Report intake: {args.reports} POSTs, {args.concurrency} connections, "
        f"{args.api_workers} uvicorn workers, PostgreSQL + Redis"
    )
    for col in ("measure", "result", "target"):
        table.add_column(col)
    table.add_row("intake rate", f"{rate:,.0f} reports/s", "≥ 1,000/s")
    table.add_row("latency p50 / p99", f"{p50:.1f} / {p99:.1f} ms", "p99 < 100 ms")
    table.add_row(
        "API CPU per report",
        f"{api_cpu / args.reports * 1000:.2f} ms (≈ {args.reports / api_cpu:,.0f}/s per free core)",
        "",
    )
    table.add_row("machine load (1 min) at start", f"{load_before:.1f} on {os.cpu_count()} cores", "")
    table.add_row("HTTP statuses", ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())), "all 202")
    table.add_row("lost (posted − stored rows)", str(args.reports - stored), "0")
    table.add_row(
        "enrichment catch-up",
        f"{done:,} done, {failed} failed, {left} waiting in {enrich_s:.0f} s ({done / enrich_s:,.0f}/s)",
        "all done",
    )
    console.print(table)
    geo = Table(title=f"Text geocoding vs coordinates: {acc['total']} PetaBencana reports located in a DKI kecamatan")
    for col in ("geocoder", "kecamatan right", "share", "answered", "right when answered"):
        geo.add_column(col)
    for label, key in (("ours (geo.geoparse)", "ours"), ("naive exact kecamatan name", "naive")):
        right, answered = acc[key], acc[f"guessed_{key}"]
        geo.add_row(
            label,
            str(right),
            f"{right / acc['total']:.1%}",
            str(answered),
            f"{right / answered:.1%}" if answered else "-",
        )
    console.print(geo)
    drop_db(name)


if __name__ == "__main__":
    main()

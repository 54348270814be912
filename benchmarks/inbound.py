"""Report intake under a flood spike, then enrichment catching up, then the geoparser against coordinates.

1. intake  — the real app under uvicorn (its own processes) on PostgreSQL + Redis; partner reports (PetaBencana
             texts, unique ids) POSTed to /api/v1/reports over keep-alive connections, twice in the same run:
             the naive path (report_intake_batching off: one INSERT and one commit per request) as the baseline,
             then ours (concurrent requests share one INSERT and commit). Load generator: `wrk` with a Lua script
             (cheap: C, one thread) when installed, else an asyncio raw-socket client. Measured: reports/s,
             p50/p95/p99 latency, statuses, lost (acknowledged ids missing from the table), CPU per report of the
             API processes, of this database's PostgreSQL backends and of the generator, machine load.
2. enrich  — a real Celery worker (`broadcast worker`) started afterwards: time until no report waits.
   enrichment rate — the same stored reports enriched by a real worker on the intake queue (2 processes), twice in
             the same run: the old path (report_enrich_batching off: one transaction per report) as the baseline,
             then ours (batches: one keyword pass, one point-in-polygon query per level, one bulk UPDATE).
             Measured: reports/s from the first claim until none waits, CPU per report of the worker and PostgreSQL.
3. geocode — the PetaBencana reports whose coordinates fall in a DKI Jakarta kecamatan: share whose text alone
             gives the coordinates' kecamatan, ours (geo.geoparse, markers, fuzzy, agreement; also without the
             well-known area list, and on the national gazetteer with the arrival jurisdiction as the only hint)
             vs the naive baseline (first exact kecamatan name in the text), same run; the misses by cause and
             the ceiling (reports naming any place of the right kecamatan at all). See docs/geocoding.md.

    python benchmarks/inbound.py --reports 5000 --concurrency 32            # wrk if installed (apt install wrk)
    python benchmarks/inbound.py --generator python --reports 5000          # asyncio client
    python benchmarks/inbound.py --no-baseline --no-geocode                 # ours only, quicker
    python benchmarks/inbound.py --geocode-only                             # only the geocoding tables
    python benchmarks/inbound.py --geocode-only --examples 3                # ... and 3 texts per miss cause
    python benchmarks/inbound.py --enrich-rate-only --enrich-reports 5000   # only the enrichment rate table

With wrk the run lasts --reports / --expected-rate seconds (wrk runs for a duration); "posted" is what was answered.
The machine is shared: read the CPU per report (a property of the code) next to the rate (a property of the moment).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from rapidfuzz import fuzz, process
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


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next((int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:")), 0)
    body = await reader.readexactly(length) if length else b""
    return status, body


@dataclass
class Fired:
    """What a load generator saw: statuses, acknowledged report ids, latency percentiles, wall time, its own CPU."""

    statuses: dict[int, int]
    ids: list[int]
    wall_s: float
    generator_cpu_s: float
    p50: float
    p95: float
    p99: float

    @property
    def answered(self) -> int:
        return sum(self.statuses.values())


async def _fire(port: int, bodies: list[bytes], concurrency: int) -> Fired:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    ids: list[int] = []

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
                    status, answer = await read_response(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    status, answer = 0, b""
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                latencies.append((time.perf_counter() - t0) * 1000)
                statuses[status] = statuses.get(status, 0) + 1
                if status == 202:
                    ids.append(int(json.loads(answer)["id"]))
        finally:
            writer.close()

    start_t = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - start_t
    p50, p95, p99 = (float(v) for v in np.percentile(latencies, [50, 95, 99]))
    return Fired(statuses, ids, wall, 0.0, p50, p95, p99)


def fire_python(port: int, bodies: list[bytes], concurrency: int) -> Fired:
    """POST every body over `concurrency` keep-alive connections from an asyncio client in this process."""
    cpu0 = time.process_time()
    fired = asyncio.run(_fire(port, bodies, concurrency))
    fired.generator_cpu_s = time.process_time() - cpu0
    return fired


# wrk runs for a duration: each request gets the next PetaBencana text and a unique external_id
# (<run>-<thread>-<n>); every 202's report id is kept and handed to done(), which writes them all to a file.
WRK_SCRIPT = """
local prefixes, suffixes = {}, {}
for line in io.lines("@BODIES@") do
  local tab = string.find(line, "\\t", 1, true)
  prefixes[#prefixes + 1] = string.sub(line, 1, tab - 1)
  suffixes[#suffixes + 1] = string.sub(line, tab + 1)
end
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
function init(args)
  n, ids, statuses = 0, {}, {}
  headers = {["Content-Type"] = "application/json", ["X-API-Key"] = "@KEY@"}
end
function request()
  n = n + 1
  local k = (n + tid * 7919) % #prefixes + 1
  return wrk.format("POST", "/api/v1/reports", headers, prefixes[k] .. "@RUN@-" .. tid .. "-" .. n .. suffixes[k])
end
function response(status, hdrs, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status == 202 then
    ids[#ids + 1] = tonumber(string.match(body, '"id":(%d+)'))
  end
end
function done(summary, latency, requests)
  local out = io.open("@OUT@", "w")
  local parts = {}
  for _, q in ipairs({50, 95, 99}) do parts[#parts + 1] = '"p' .. q .. '":' .. latency:percentile(q) / 1000 end
  out:write('{' .. table.concat(parts, ",") .. ',"errors":' .. (summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout) .. ',"statuses":{')
  local merged = {}
  for _, t in ipairs(threads) do
    for status, count in pairs(t:get("statuses")) do merged[status] = (merged[status] or 0) + count end
  end
  local sp = {}
  for status, count in pairs(merged) do sp[#sp + 1] = '"' .. status .. '":' .. count end
  out:write(table.concat(sp, ",") .. '},"ids":[')
  local first = true
  for _, t in ipairs(threads) do
    local tids = t:get("ids")
    if #tids > 0 then
      if not first then out:write(",") end
      out:write(table.concat(tids, ","))
      first = false
    end
  end
  out:write("]}")
  out:close()
end
"""


def fire_wrk(port: int, run: str, templates: list[tuple[str, str]], concurrency: int, seconds: float) -> Fired:
    """Run wrk (one thread, `concurrency` connections) for `seconds`; its CPU from the child rusage."""
    work = Path(tempfile.mkdtemp(prefix="bench-wrk-"))
    (work / "bodies.tsv").write_text("".join(f"{pre}\t{suf}\n" for pre, suf in templates), encoding="utf-8")
    script = (
        WRK_SCRIPT.replace("@BODIES@", str(work / "bodies.tsv"))
        .replace("@OUT@", str(work / "out.json"))
        .replace("@KEY@", API_KEY)
        .replace("@RUN@", run)
    )
    (work / "post.lua").write_text(script, encoding="utf-8")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(work / "post.lua"),
            f"http://127.0.0.1:{port}",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = json.loads((work / "out.json").read_text())
    statuses = {int(k): v for k, v in out["statuses"].items()}
    if out["errors"]:
        statuses[0] = out["errors"]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    ids = [int(i) for i in out["ids"]]
    return Fired(statuses, ids, wall, cpu, out["p50"], out["p95"], out["p99"])


def cpu_seconds(pids: set[int] | None = None, root_pid: int | None = None) -> dict[int, float]:
    """CPU time (user + system) per process: the given pids and/or a process and its direct children."""
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry.name), int(fields[1])
        if (pids and pid in pids) or (root_pid is not None and root_pid in (pid, ppid)):
            out[pid] = (int(fields[11]) + int(fields[12])) / ticks
    return out


def pg_server_cpu(db_url: str) -> float:
    """CPU time of the whole PostgreSQL server so far: the postmaster, its live processes, and (cutime, cstime) the
    connections it has already reaped, so short-lived connections count too. Includes other users of the server."""
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    with engine.connect() as c:
        backend = int(c.scalar(sa.text("SELECT pg_backend_pid()")))
        postmaster = int(Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()[1])
    ticks = os.sysconf("SC_CLK_TCK")
    fields = Path(f"/proc/{postmaster}/stat").read_text().rsplit(")", 1)[1].split()
    reaped = (int(fields[13]) + int(fields[14])) / ticks
    return reaped + sum(cpu_seconds(root_pid=postmaster).values())


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(v - before.get(pid, 0.0) for pid, v in after.items())


def missing_ids(db_url: str, ids: list[int]) -> int:
    """Acknowledged report ids that are not rows in the table (lost)."""
    if not ids:
        return 0
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    with engine.connect() as c:
        found = c.scalar(sa.text("SELECT count(*) FROM reports WHERE id = ANY(:ids)"), {"ids": sorted(set(ids))})
    return len(set(ids)) - int(found)


@dataclass
class IntakeResult:
    label: str
    fired: Fired
    api_cpu_s: float
    pg_cpu_s: float
    load: tuple[float, float]  # 1-minute load average before and after
    lost: int
    stored: int
    db_url: str = ""
    enrich: str = "-"

    @property
    def rate(self) -> float:
        return self.fired.answered / self.fired.wall_s


def measure_intake(label: str, *, batching: bool, args: argparse.Namespace, items: list[Any]) -> IntakeResult:
    """Start the API on a fresh database, warm it up, fire the reports, count what was stored; the API is stopped,
    the database is kept for the enrichment phase (the caller drops it)."""
    name, db_url = create_db()
    data_dir = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    env = child_env(db_url, data_dir)
    env["BROADCAST_REPORT_INTAKE_BATCHING"] = "true" if batching else "false"
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "broadcast.api.asgi:app", "--port", str(port)]
    cmd += ["--workers", str(args.api_workers), "--no-access-log", "--log-level", "warning"]
    api = start(cmd, env, data_dir / "api.log")
    run = uuid.uuid4().hex[:6]
    try:
        wait_healthy(port, api)
        warm = [json.dumps({"text": "warm-up banjir", "external_id": f"w{run}-{i}"}).encode() for i in range(300)]
        fire_python(port, warm, 16)  # connections, imports, first queries: not measured
        templates, bodies = [], []
        for i in range(len(items) if args.generator == "wrk" else args.reports):
            item = items[i % len(items)]
            payload = {
                "text": item.text or "banjir",
                "external_id": "@ID@" if args.generator == "wrk" else f"{run}-{i}",
                "lat": item.lat,
                "lon": item.lon,
                "author": f"pb-{i % 400}",
                "hazard": "banjir",
            }
            if args.generator == "wrk":
                pre, suf = json.dumps(payload).split("@ID@")
                templates.append((pre, suf))
            else:
                bodies.append(json.dumps(payload).encode())
        load_before = os.getloadavg()[0]
        pg_before, api_before = pg_server_cpu(db_url), cpu_seconds(root_pid=api.pid)
        if args.generator == "wrk":
            fired = fire_wrk(port, run, templates, args.concurrency, args.reports / args.expected_rate)
        else:
            fired = fire_python(port, bodies, args.concurrency)
        api_cpu = cpu_delta(api_before, cpu_seconds(root_pid=api.pid))
        pg_cpu = pg_server_cpu(db_url) - pg_before
        load_after = os.getloadavg()[0]
    finally:
        stop(api)
    return IntakeResult(
        label=label,
        fired=fired,
        api_cpu_s=api_cpu,
        pg_cpu_s=pg_cpu,
        load=(load_before, load_after),
        lost=missing_ids(db_url, fired.ids),
        stored=stored_rows(db_url, run),
        db_url=db_url,
    )


def enrich(db_url: str, timeout: float) -> str:
    """A real Celery worker enriches what the intake stored: time until no report waits."""
    env = child_env(db_url, Path(tempfile.mkdtemp(prefix="bench-enrich-")))
    console.print("enrichment: starting a real worker (broadcast worker --concurrency 2)")
    t0 = time.monotonic()
    worker = start(
        [sys.executable, "-m", "broadcast.cli", "worker", "--concurrency", "2"],
        env,
        Path(env["BROADCAST_DATA_DIR"]) / "worker.log",
    )
    try:
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
        while left and time.monotonic() - t0 < timeout:
            time.sleep(1)
            left, failed, done = waiting(db_url)
    finally:
        stop(worker)
    spent = time.monotonic() - t0
    return f"{done:,} done, {failed} failed, {left} waiting in {spent:.0f} s ({done / spent:,.0f}/s)"


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


# ---------------------------------------------------------------------------------------------------------------
# Enrichment rate (issue 20): the same stored reports enriched by a real worker, the old path vs batches.


@dataclass
class EnrichRate:
    """One enrichment run: reports done and failed, wall time from the first claim to the last report, CPU."""

    label: str
    done: int
    failed: int
    wall_s: float
    worker_cpu_s: float
    pg_cpu_s: float
    incidents: int
    duplicates: int

    @property
    def rate(self) -> float:
        return self.done / self.wall_s if self.wall_s else 0.0


def store_for_enrichment(db_url: str, items: list[Any], n: int) -> None:
    """n reports as the partner API stores them during the intake run (PetaBencana texts and points, 400
    authors, hazard banjir, all received now), pending enrichment."""
    from broadcast.db import make_engine, session_scope
    from broadcast.reports import intake

    engine = make_engine(db_url)
    key = b"benchmark-author-key-0123456789ab"
    try:
        for start in range(0, n, 1000):
            rows = []
            for i in range(start, min(n, start + 1000)):
                item = items[i % len(items)]
                payload = {"text": item.text or "banjir", "lat": item.lat, "lon": item.lon, "hazard": "banjir"}
                rows.append(
                    intake.intake_values(
                        source="api",
                        external_id=f"bench:enrich-{i}",
                        raw={"caller": "bench", **payload, "author": f"pb-{i % 400}"},
                        text=payload["text"],
                        author=intake.author_hash(key, f"bench:pb-{i % 400}"),
                        lat=item.lat,
                        lon=item.lon,
                        hazard="banjir",
                    )
                )
            with session_scope(engine) as session:
                intake.store_many(session, rows)
    finally:
        engine.dispose()


def claimed(db_url: str) -> bool:
    """Whether a worker has claimed (or finished) any report yet."""
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    with engine.connect() as c:
        return c.scalar(sa.text("SELECT 1 FROM reports WHERE processing <> 'pending' LIMIT 1")) is not None


def enrichment_counts(db_url: str) -> tuple[int, int]:
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    with engine.connect() as c:
        incidents = int(c.scalar(sa.text("SELECT count(*) FROM incidents")) or 0)
        duplicates = int(c.scalar(sa.text("SELECT count(*) FROM reports WHERE duplicate_of_id IS NOT NULL")) or 0)
    return incidents, duplicates


def measure_enrichment(label: str, *, batching: bool, n: int, items: list[Any], timeout: float) -> EnrichRate:
    """A fresh database with n stored reports and a real worker on the intake queue (2 processes, as deployed):
    wall time from the first claimed report until none waits; CPU of the worker's processes and PostgreSQL's."""
    from broadcast.reports import tasks

    name, db_url = create_db()
    try:
        store_for_enrichment(db_url, items, n)
        env = child_env(db_url, Path(tempfile.mkdtemp(prefix="bench-enrich-")))
        env["BROADCAST_REPORT_ENRICH_BATCHING"] = "true" if batching else "false"
        worker = start(
            [sys.executable, "-m", "broadcast.cli", "worker", "--queues", "intake", "--concurrency", "2"],
            env,
            Path(env["BROADCAST_DATA_DIR"]) / "worker.log",
        )
        try:
            runs = max(2, 2 * -(-n // (tasks.BATCH * tasks.MAX_ROUNDS)))  # enough runs to drain without the beat
            subprocess.run(
                [
                    sys.executable,
                    "-c",
                    f"from broadcast.reports.tasks import enrich_pending as t; [t.delay() for _ in range({runs})]",
                ],
                env=env,
                check=True,
            )
            deadline = time.monotonic() + timeout
            while not claimed(db_url) and time.monotonic() < deadline:  # the worker starting (imports)
                time.sleep(0.05)
            left, failed, done = waiting(db_url)
            worker_before, pg_before = cpu_seconds(root_pid=worker.pid), pg_server_cpu(db_url)
            t0 = time.monotonic()
            while left and time.monotonic() < deadline:
                time.sleep(0.1)
                left, failed, done = waiting(db_url)
            wall = time.monotonic() - t0
            worker_cpu = cpu_delta(worker_before, cpu_seconds(root_pid=worker.pid))
            pg_cpu = pg_server_cpu(db_url) - pg_before
        finally:
            stop(worker)
        incidents, duplicates = enrichment_counts(db_url)
    finally:
        drop_db(name)
    return EnrichRate(label, done, failed, wall, worker_cpu, pg_cpu, incidents, duplicates)


def print_enrichment_rate(n: int, timeout: float) -> None:
    """Enrichment of the same n stored reports by a real worker (2 processes): the old path (one transaction per
    report) then ours (batches), same run."""
    items = list(petabencana.load_reports())
    console.print(f"enrichment rate: {n:,} stored reports, real worker on the intake queue (2 processes)")
    results = [
        measure_enrichment("old: one report per transaction", batching=False, n=n, items=items, timeout=timeout),
        measure_enrichment("ours: batches of up to 200", batching=True, n=n, items=items, timeout=timeout),
    ]
    table = Table(
        title=f"Report enrichment on PostgreSQL: {n:,} PetaBencana reports (points, 400 authors), `broadcast worker "
        f"--queues intake --concurrency 2`, {os.cpu_count()} cores shared with the database"
    )
    table.add_column("measure")
    for r in results:
        table.add_column(r.label)
    table.add_column("target")
    table.add_row("reports enriched (failed)", *[f"{r.done:,} ({r.failed})" for r in results], f"{n:,} (0)")
    table.add_row("enrichment rate", *[f"{r.rate:,.0f} reports/s" for r in results], "≥ 1,000/s")
    table.add_row("wall time (first claim → none waiting)", *[f"{r.wall_s:.1f} s" for r in results])
    table.add_row("worker CPU per report", *[f"{r.worker_cpu_s / max(r.done, 1) * 1000:.2f} ms" for r in results])
    table.add_row(
        "PostgreSQL CPU per report (whole server¹)", *[f"{r.pg_cpu_s / max(r.done, 1) * 1000:.2f} ms" for r in results]
    )
    table.add_row(
        "rate if worker + DB had the 2 cores",
        *[f"{(os.cpu_count() or 1) * r.done / max(r.worker_cpu_s + r.pg_cpu_s, 1e-9):,.0f} reports/s" for r in results],
    )
    table.add_row("incidents / duplicates found", *[f"{r.incidents:,} / {r.duplicates:,}" for r in results])
    table.add_row("machine load (1 min) at the end", *[f"{os.getloadavg()[0]:.1f}" for _ in results])
    console.print(table)
    console.print(
        "¹ every PostgreSQL process, including any other database's work on this shared server at the time. Two "
        "processes enrich concurrently, so which of two close reports starts an incident can differ between runs; "
        "tests/integration/test_report_enrichment_batch.py checks that a batch gives the same rows as one by one."
    )


def _kecamatans_named(text: str) -> tuple[set[str], set[str]]:
    """Every DKI kecamatan that some stretch of `text` (1-4 words, exact or misspelt) could name through an official
    kecamatan/kelurahan name, and those through a well-known area name: the oracle behind the ceiling. Generous on
    purpose: everyday words that are also names ("pasar", "jati") count, context (river, street, estate) is ignored.
    """
    words, _ = geoparse._tokens(text)
    official: set[str] = set()
    areas: set[str] = set()
    for i in range(len(words)):
        for n in range(1, 5):
            if i + n > len(words):
                break
            phrase = words[i : i + n]
            hits = {k for k in (geoparse._kecamatan_of(p) for p in geoparse._exact(phrase, "31", None, False)) if k}
            if not hits:
                hits = _misspelt_kecamatan(" ".join(phrase))
            official |= hits
            areas |= {k for k in (geoparse._kecamatan_of(p) for p in geoparse._exact(phrase, "31", None, True)) if k}
    return official, areas


@cache
def _misspelt_kecamatan(phrase: str) -> set[str]:
    if len(phrase) < 6:
        return set()
    names, kecs = _dki_names()
    hit = process.extractOne(phrase, names, scorer=fuzz.ratio, score_cutoff=geoparse.FUZZY_CUTOFF)
    return {kecs[hit[2]]} if hit is not None else set()


@lru_cache(maxsize=1)
def _dki_names() -> tuple[tuple[str, ...], tuple[str, ...]]:
    names: list[str] = []
    kecs: list[str] = []
    for level in ("kecamatan", "desa_kelurahan"):
        level_names, places = geoparse._names_at(level, "31")
        for name, place in zip(level_names, places, strict=True):
            names.append(name)
            kecs.append(geoparse._kecamatan_of(place) or "")
    return tuple(names), tuple(kecs)


_NOISE = re.compile(r"#\w+|@\w+|https?://\S+|\\u[0-9a-fA-F]+")


def miss_cause(parsed: geoparse.ParsedLocation, truth: str, text: str, named: set[str]) -> str:
    """Why the text did not give the coordinates' kecamatan (the table of misses by cause). `named`: the kecamatan
    any stretch of the text could name (the oracle); "right name in text" means the truth is among them."""
    right_named = truth in named
    if parsed.kecamatan is not None:
        if right_named:
            return "wrong: the text also names a place in the right kecamatan (scoring or tie-break)"
        answer, real = boundaries.geometry_of(parsed.kecamatan), boundaries.geometry_of(truth)
        if answer is not None and real is not None and answer.buffer(0.002).intersects(real):
            return "wrong: only a neighbouring kecamatan named (place at a border, or the point is off)"
        return "wrong: only a kecamatan farther away named (point off, or a street/estate named after it)"
    if parsed.capped:
        return "no answer: work cap hit"
    if right_named:
        if parsed.ambiguous:
            return "no answer, right name in text: same-name places in different kecamatan"
        if "not enough to place" in parsed.reason:
            return "no answer, right name in text: only in an estate's/landmark's name (weak, abstained)"
        return "no answer, right name in text: read as a river's/street's name or an everyday word"
    if not parsed.mentions:
        if not geoparse._ascii_words(_NOISE.sub(" ", text)):
            return "no place named: empty, or only hashtags/handles"
        if parsed.street:
            return "no place named: only a street (no street gazetteer)"
        if parsed.rw or parsed.rt:
            return "no place named: only RT/RW numbers"
        return "no place named: no official or listed area name (an estate, landmark or street at most)"
    if all(m.candidates and all(p.level == "kabupaten_kota" for p in m.candidates) for m in parsed.mentions):
        return "no place named: only a kota/kabupaten"
    return "no answer, names only other kecamatan (weak or ambiguous): correctly abstained"


GEOCODERS: dict[str, dict[str, Any]] = {
    "ours (geo.geoparse, within DKI)": {"within": "31"},
    "ours, official names only (no area list)": {"within": "31", "areas": False},
    "ours, national gazetteer + arrival jurisdiction DKI": {"jurisdiction": "31"},
}


def geocoder_accuracy() -> dict[str, Any]:
    items = petabencana.load_reports()
    truth = boundaries.codes_at(
        np.array([r.lon for r in items]),
        np.array([r.lat for r in items]),
        "kecamatan",
    )
    total = 0
    right = dict.fromkeys([*GEOCODERS, "naive"], 0)
    answered = dict.fromkeys([*GEOCODERS, "naive"], 0)
    ceiling = {"official": 0, "areas": 0}
    causes: dict[str, int] = {}
    examples: dict[str, list[str]] = {}
    parse_s = 0.0
    geoparse.parse_location("banjir di Kp. Melayu", within="31")  # indexes built before the clock runs
    for item, code in zip(items, truth, strict=True):
        if not str(code).startswith("31."):
            continue
        total += 1
        for label, kwargs in GEOCODERS.items():
            t0 = time.perf_counter()
            parsed = geoparse.parse_location(item.text, **kwargs)
            if label == next(iter(GEOCODERS)):
                parse_s += time.perf_counter() - t0
                ours = parsed
            answered[label] += parsed.kecamatan is not None
            right[label] += parsed.kecamatan == code
        base = geoparse.naive_kecamatan(item.text, within="31")
        answered["naive"] += base is not None
        right["naive"] += base == code
        named, by_area = _kecamatans_named(item.text)
        ceiling["official"] += code in named
        ceiling["areas"] += code in (named | by_area)
        if ours.kecamatan != code:
            cause = miss_cause(ours, str(code), item.text, named | by_area)
            causes[cause] = causes.get(cause, 0) + 1
            examples.setdefault(cause, []).append(f"{item.text[:110]!r} (point in {code})")
    return {
        "total": total,
        "right": right,
        "answered": answered,
        "ceiling": ceiling,
        "causes": causes,
        "examples": examples,
        "parse_ms": parse_s / total * 1000,
    }


def print_geocoding(examples: int = 0) -> None:
    """Text geocoding against the reports' coordinates, ours vs the naive baseline, ours' misses by cause, and the
    ceiling: how many reports name, anywhere in their text, a place of the coordinates' kecamatan at all."""
    acc = geocoder_accuracy()
    total = acc["total"]
    geo = Table(title=f"Text geocoding vs coordinates: {total} PetaBencana reports located in a DKI kecamatan")
    for col in ("geocoder", "kecamatan right", "share", "answered", "right when answered"):
        geo.add_column(col)
    for label in [*GEOCODERS, "naive"]:
        r, a = acc["right"][label], acc["answered"][label]
        name = "naive: first exact kecamatan name" if label == "naive" else label
        geo.add_row(name, str(r), f"{r / total:.1%}", str(a), f"{r / a:.1%}" if a else "-")
    console.print(geo)
    ours = next(iter(GEOCODERS))
    misses = Table(title=f"Misses of ours by cause ({total - acc['right'][ours]} of {total})")
    for col in ("cause", "reports", "share of all"):
        misses.add_column(col)
    for cause, count in sorted(acc["causes"].items(), key=lambda kv: (kv[0].split(":")[0], -kv[1])):
        misses.add_row(cause, str(count), f"{count / total:.1%}")
    console.print(misses)
    if examples:
        for cause, texts in sorted(acc["examples"].items()):
            console.print(f"[bold]{cause}[/bold]")
            for text in texts[:examples]:
                console.print(f"  {text}", markup=False)
    official, areas = acc["ceiling"]["official"], acc["ceiling"]["areas"]
    console.print(
        f"Ceiling: {official} reports ({official / total:.1%}) name anywhere in their text (exact or misspelt, any "
        f"context) an official kecamatan/kelurahan of the kecamatan their point lies in; {areas} ({areas / total:.1%}) "
        "counting the well-known area names too. No reading of the gazetteer can place more. "
        "Goal (issue 23): ≥ 45 % right overall, ≥ 85 % right when answered. "
        f"Ours: {acc['parse_ms']:.2f} ms per report."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=5000, help="reports to post (wrk: sets the duration)")
    parser.add_argument("--concurrency", type=int, default=32, help="keep-alive connections")
    parser.add_argument("--api-workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--expected-rate", type=float, default=1000, help="wrk: duration = reports / this")
    parser.add_argument("--no-baseline", action="store_true", help="skip the naive per-request-commit run")
    parser.add_argument("--no-geocode", action="store_true", help="skip the geocoder accuracy table")
    parser.add_argument("--no-enrich", action="store_true", help="skip the enrichment catch-up")
    parser.add_argument("--enrich-timeout", type=float, default=900)
    parser.add_argument("--geocode-only", action="store_true", help="only the text geocoding tables")
    parser.add_argument("--examples", type=int, default=0, help="geocoding: print this many texts per miss cause")
    parser.add_argument("--enrich-reports", type=int, default=5000, help="stored reports for the enrichment rate")
    parser.add_argument("--no-enrich-rate", action="store_true", help="skip the enrichment rate (old vs batches)")
    parser.add_argument("--enrich-rate-only", action="store_true", help="only the enrichment rate table")
    args = parser.parse_args()
    if args.geocode_only:
        print_geocoding(args.examples)
        return
    if args.enrich_rate_only:
        import redis

        redis.Redis.from_url(BROKER).flushdb()
        print_enrichment_rate(args.enrich_reports, args.enrich_timeout)
        return
    if args.generator == "auto":
        args.generator = "wrk" if shutil.which("wrk") else "python"

    import redis

    redis.Redis.from_url(BROKER).flushdb()
    items = list(petabencana.load_reports())
    results = []
    if not args.no_baseline:
        console.print("intake: baseline, one INSERT and commit per request (BROADCAST_REPORT_INTAKE_BATCHING=false)")
        results.append(measure_intake("baseline: INSERT + commit per request", batching=False, args=args, items=items))
        drop_db(sa.make_url(results[-1].db_url).database or "")
    console.print("intake: ours, concurrent requests share one INSERT and commit")
    ours = measure_intake("ours: shared batched INSERT + commit", batching=True, args=args, items=items)
    results.append(ours)
    try:
        if not args.no_enrich:
            ours.enrich = enrich(ours.db_url, args.enrich_timeout)
    finally:
        drop_db(sa.make_url(ours.db_url).database or "")

    generator = "wrk -t1 (C, Lua bodies)" if args.generator == "wrk" else "asyncio raw-socket client"
    table = Table(
        title=f"Report intake on PostgreSQL + Redis: {args.concurrency} keep-alive connections, {args.api_workers} "
        f"uvicorn workers, {os.cpu_count()} cores shared with the generator ({generator}) and the database"
    )
    table.add_column("measure")
    for r in results:
        table.add_column(r.label)
    table.add_column("target")

    def row(measure: str, values: list[str], target: str = "") -> None:
        table.add_row(measure, *values, target)

    row("reports answered", [f"{r.fired.answered:,}" for r in results])
    row("intake rate", [f"{r.rate:,.0f} reports/s" for r in results], "≥ 1,000/s")
    row(
        "latency p50 / p95 / p99",
        [f"{r.fired.p50:.1f} / {r.fired.p95:.1f} / {r.fired.p99:.1f} ms" for r in results],
        "p99 < 100 ms",
    )
    row(
        "HTTP statuses",
        [", ".join(f"{k}: {v}" for k, v in sorted(r.fired.statuses.items())) for r in results],
        "all 202",
    )
    row("lost (acknowledged ids not stored)", [str(r.lost) for r in results], "0")
    row("rows stored (incl. in flight at the end)", [f"{r.stored:,}" for r in results])
    row("API CPU per report", [f"{r.api_cpu_s / r.fired.answered * 1000:.2f} ms" for r in results])
    row(
        "PostgreSQL CPU per report (whole server¹)", [f"{r.pg_cpu_s / r.fired.answered * 1000:.2f} ms" for r in results]
    )
    row("generator CPU per report", [f"{r.fired.generator_cpu_s / r.fired.answered * 1000:.2f} ms" for r in results])
    row(
        "rate if API + DB had the 2 cores",
        [f"{os.cpu_count() * r.fired.answered / (r.api_cpu_s + r.pg_cpu_s):,.0f} reports/s" for r in results],
    )
    row("machine load (1 min) before → after", [f"{r.load[0]:.1f} → {r.load[1]:.1f}" for r in results])
    row("enrichment catch-up (real worker)", [r.enrich for r in results], "all done")
    console.print(table)
    console.print(
        "¹ every PostgreSQL process, including connections opened and closed during the run (the naive path's pool "
        "overflow) and any other database's work on this shared server at the time."
    )

    if not args.no_enrich_rate:
        redis.Redis.from_url(BROKER).flushdb()
        print_enrichment_rate(args.enrich_reports, args.enrich_timeout)

    if not args.no_geocode:
        print_geocoding(args.examples)


if __name__ == "__main__":
    main()

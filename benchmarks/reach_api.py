"""Reach estimates and fan-out planning with a national-size subscriber table in PostgreSQL.

Subscribers are random points in the kabupaten/kota of Java and Sulawesi, in proportion to population (as in
benchmarks/targeting.py), 10 % of them registered by code only (a kabupaten, no point); Kabupaten Grobogan holds
exactly --grobogan of them. They are bulk-loaded with COPY. Then, in the same run:

1. the warm index (broadcast.subscribers.warm) loaded in this process: load time and RSS per 1M subscribers;
2. the old path (targeting.load_subscribers, a full read per request, then count) for the three areas;
3. the real app under uvicorn: the composer's reach estimate (POST /api/v1/areas/resolve, httpx) for Grobogan,
   Palu and a 25 km circle around Merapi, p50/p99 over --reps requests each;
4. a subscriber registering by SMS (`DAFTAR`, a signed Twilio webhook to the same app): the time until the
   composer's count includes them;
5. a real worker (2 pool processes) and a fake Twilio: a Grobogan alert (--grobogan recipients) approved with
   the big table in place: planning time (published → planned) and approval → first provider request.

    python benchmarks/reach_api.py --size 100000
    python benchmarks/reach_api.py --size 1000000
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import fanout  # noqa: E402 - the fake Twilio, worker environment and readiness helpers
import targeting as targeting_bench  # noqa: E402 - the synthetic population

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BROKER = os.environ.get("BENCH_BROKER", "redis://127.0.0.1:6379/3")
SECRET = "benchmark-production-secret-key"  # noqa: S105 - a throwaway local value
PASSWORD = "correct-horse-battery"  # noqa: S105 - tests.factories' password for the team
AREAS: dict[str, dict[str, Any]] = {
    "Kabupaten Grobogan 33.15": {"geocodes": ["33.15"]},
    "Kota Palu 72.71": {"geocodes": ["72.71"]},
    "Merapi 25 km circle": {"circle": {"lon": 110.446, "lat": -7.540, "radius_km": 25}},
}
console = Console(width=200)
NULL = "\\N"  # COPY text format's NULL


CHUNK = 500_000  # rows generated and copied at a time: memory stays flat from 100k to 10M subscribers


def population(n: int, grobogan: int, seed: int = 20261207, chunk: int = CHUNK) -> Iterator[dict[str, np.ndarray]]:
    """n subscribers in chunks of at most `chunk` rows: points in the kabupaten/kota of Java and Sulawesi weighted
    by population (exactly `grobogan` inside Grobogan), each carrying the code of the kabupaten it was drawn in
    (as DAFTAR with a located point stores it); a tenth of those outside Grobogan registered by a kabupaten code
    only (no point). Each chunk holds its share of every kabupaten, in random order (row order unrelated to
    place, as in a real table); only one chunk is ever in memory."""
    from geo import boundaries
    from geo.reach import population_by_kode

    rng = np.random.default_rng(seed)
    weight = population_by_kode()
    kabs = [(c, g) for c, g in boundaries.outlines("kabupaten_kota") if c[:2] in targeting_bench.PROVINSI]
    others = [(c, g) for c, g in kabs if c != "33.15"]
    shares = np.array([weight.get(c, 0) for c, _ in others], dtype=float)
    counts = np.append(rng.multinomial(n - grobogan, shares / shares.sum()), grobogan)
    places = [*others, ("33.15", boundaries.geometry_of("33.15"))]
    other_codes = np.array([c for c, _ in others], dtype="U13")
    left = counts.copy()
    for start in range(0, n, chunk):
        size = min(chunk, n - start)
        here = rng.multivariate_hypergeometric(left, size) if size < left.sum() else left.copy()
        left -= here
        lon, lat, codes = [], [], []
        for (code, geom), k in zip(places, here, strict=True):
            if k:
                x, y = targeting_bench.points_in(geom, int(k), rng)
                lon.append(x)
                lat.append(y)
                codes.append(np.full(int(k), code, dtype="U13"))
        part = {"lon": np.concatenate(lon), "lat": np.concatenate(lat), "codes": np.concatenate(codes)}
        outside = np.flatnonzero(part["codes"] != "33.15")
        code_only = rng.choice(outside, size=outside.size // 10, replace=False)
        part["codes"][code_only] = rng.choice(other_codes, size=code_only.size)
        part["lon"][code_only] = np.nan
        part["lat"][code_only] = np.nan
        order = rng.permutation(size)
        yield {k: v[order] for k, v in part.items()}


def make_db() -> str:
    name = f"bench_reach_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return str(sa.make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False))


def bulk_load(db_url: str, chunks: Iterable[dict[str, np.ndarray]]) -> tuple[int, float]:
    """COPY the subscribers in, a chunk at a time: (rows, seconds taken by the COPY, the version trigger and
    indexes included; generating the chunks is not counted)."""
    import psycopg

    rows, copy_s = 0, 0.0
    dsn = sa.make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cols = "phone, language, admin_code, lat, lon, channels, active, created_at"
        with cur.copy(f"COPY subscribers ({cols}) FROM STDIN") as copy:
            for part in chunks:
                t0 = time.perf_counter()
                for start in range(0, part["lon"].size, 100_000):
                    buf = io.StringIO()
                    for i in range(start, min(part["lon"].size, start + 100_000)):
                        lon, lat = part["lon"][i], part["lat"][i]
                        point = "\\N\t\\N" if np.isnan(lon) else f"{lat:.6f}\t{lon:.6f}"
                        code_field = part["codes"][i] or NULL
                        buf.write(
                            f'+6281{rows + i:09d}\tid\t{code_field}\t{point}\t["sms"]\tt\t2026-12-07 00:00:00+00\n'
                        )
                    copy.write(buf.getvalue())
                rows += int(part["lon"].size)
                copy_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        cur.execute("ANALYZE subscribers")
        copy_s += time.perf_counter() - t0
    return rows, copy_s


def seed_team(db_url: str) -> None:
    from broadcast import migrate
    from broadcast.db import make_engine, session_scope
    from tests.factories import make_team

    migrate.upgrade(db_url)
    engine = make_engine(db_url)
    with session_scope(engine) as s:
        make_team(s)
    engine.dispose()


def measure_index(db_url: str) -> dict[str, float]:
    """Load the warm index in this process: seconds and resident MB it added."""
    from broadcast.db import make_engine
    from broadcast.runtime import preload
    from broadcast.subscribers import warm

    preload()  # the boundaries every process loads anyway: not the index's memory
    engine = make_engine(db_url)
    gc.collect()
    before = psutil.Process().memory_info().rss
    t0 = time.perf_counter()
    index = warm.WarmIndex(engine)
    snap = index.snapshot()
    load_s = time.perf_counter() - t0
    gc.collect()
    after = psutil.Process().memory_info().rss
    t0 = time.perf_counter()
    for _ in range(20):
        index.snapshot()
    refresh_ms = (time.perf_counter() - t0) / 20 * 1000
    out = {
        "size": snap.size,
        "load_s": load_s,
        "rss_mb": (after - before) / 2**20,
        "array_mb": index.nbytes() / 2**20,
        "refresh_ms": refresh_ms,
    }
    # The index's part of a reach estimate (refresh, match, count per channel), without the composer and HTTP.
    from broadcast.alerts import target_area
    from broadcast.alerts.schemas import AreaSpec
    from broadcast.subscribers import targeting

    for label, spec in AREAS.items():
        target = target_area.target_of_areas([target_area.resolve_area(AreaSpec(**spec))])
        times = []
        for _ in range(30):
            t0 = time.perf_counter()
            targeting.count_per_channel(index.snapshot(), targeting.TargetSpec(target.codes, target.drawn))
            times.append((time.perf_counter() - t0) * 1000)
        out[f"count {label}"] = statistics.median(times)
    del index, snap
    engine.dispose()
    return out


def previous_count(subs: Any, spec: Any) -> dict[str, int]:
    """The in-memory count as it was before issue 20's rework, on the same arrays and the same index walk: the
    parts' ids merged by np.unique, then one id lookup per channel (the baseline of "count, CPU")."""
    from broadcast.subscribers import targeting
    from geo import boundaries

    parts = [np.array([], dtype=np.int64)]
    if spec.drawn is not None and not spec.drawn.is_empty:
        parts += [subs._points.match(spec.drawn), subs._by_code.match(spec.drawn)]
    if spec.codes:
        parts += subs._under_codes(spec.codes)
        for code in spec.codes:
            found = boundaries.nearest_geometry(code)
            if found is not None:
                parts.append(subs._points.match(found[1]))
    ids = np.unique(np.concatenate([subs.ids[p] for p in parts]).astype(np.int64))
    counts = {name: int(subs.on_channel(ids, name).size) for name in targeting.personal_channels()}
    counts["any"] = int(ids.size)
    return counts


def cpu_ms(work: Any, reps: int = 30) -> float:
    """Median CPU milliseconds of `work()` in this process (the machine is shared: wall time says less)."""
    times = []
    for _ in range(reps):
        t0 = time.process_time()
        work()
        times.append((time.process_time() - t0) * 1000)
    return statistics.median(times)


def measure_old(db_url: str, reps: int) -> dict[str, list[float]]:
    """The old path, in this process: a full read of every active subscriber, then the count. One read per rep
    serves the three areas (each area's request is that read plus its own count: at 10M a read takes minutes)."""
    from broadcast.alerts import target_area as area_geo
    from broadcast.alerts.schemas import AreaSpec
    from broadcast.db import make_engine
    from broadcast.subscribers import targeting

    engine = make_engine(db_url)
    specs = {}
    for label, spec in AREAS.items():
        target = area_geo.target_of_areas([area_geo.resolve_area(AreaSpec(**spec))])
        specs[label] = targeting.TargetSpec(target.codes, target.drawn)
    out: dict[str, list[float]] = {label: [] for label in AREAS}
    subs = None
    for _ in range(reps):
        subs = None  # the previous read is freed before the next (at 10M each holds ~1 GB)
        t0 = time.perf_counter()
        with sa.orm.Session(engine) as s:
            subs = targeting.load_subscribers(s)
        read_ms = (time.perf_counter() - t0) * 1000
        for label, spec in specs.items():
            t0 = time.perf_counter()
            targeting.count_per_channel(subs, spec)
            out[label].append(read_ms + (time.perf_counter() - t0) * 1000)
    for label, spec in specs.items():
        # Ours vs the previous in-memory count on the same arrays, in CPU time.
        mine = targeting.count_per_channel(subs, spec)
        before = previous_count(subs, spec)
        assert all(mine[k] == v for k, v in before.items()), (label, mine, before)
        out[f"cpu ours {label}"] = [cpu_ms(lambda spec=spec, subs=subs: targeting.count_per_channel(subs, spec))]
        out[f"cpu previous {label}"] = [cpu_ms(lambda spec=spec, subs=subs: previous_count(subs, spec))]
    del subs
    engine.dispose()
    return out


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def app_env(db_url: str, port: int, fake: tuple[str, str, str]) -> dict[str, str]:
    env = fanout.worker_env(db_url, fake[0], fake[1], fake[2])
    env.update(
        BROADCAST_BROKER_URL=BROKER,
        BROADCAST_PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        BROADCAST_DATA_DIR=tempfile.mkdtemp(prefix="bench-reach-"),
    )
    return env


def start(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def reach_count(client: httpx.Client, base: str, spec: dict[str, Any], headers: dict[str, str]) -> int:
    r = client.post(f"{base}/api/v1/areas/resolve", json=spec, headers=headers)
    r.raise_for_status()
    return int(r.json()["reach"]["subscribers"]["any"])


def measure_api(db_url: str, reps: int, fake: tuple[str, str, str]) -> dict[str, Any]:
    """The composer's reach through the running app; then DAFTAR by SMS until counted."""
    from twilio.request_validator import RequestValidator

    port = fanout_free_port()
    base = f"http://127.0.0.1:{port}"
    env = app_env(db_url, port, fake)
    cmd = [sys.executable, "-m", "uvicorn", "broadcast.api.asgi:app", "--port", str(port)]
    api = start([*cmd, "--no-access-log", "--log-level", "warning"], env)
    out: dict[str, Any] = {}
    try:
        t0 = time.perf_counter()
        with httpx.Client(timeout=300) as client:
            while True:
                try:
                    if client.get(f"{base}/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            token = client.post(f"{base}/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
            headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
            reach_count(client, base, AREAS["Kota Palu 72.71"], headers)  # waits for the preload if it runs
            out["ready_s"] = time.perf_counter() - t0
            out["rss_mb"] = psutil.Process(api.pid).memory_info().rss / 2**20
            for label, spec in AREAS.items():
                times, counts = [], set()
                for _ in range(reps):
                    t1 = time.perf_counter()
                    counts.add(reach_count(client, base, spec, headers))
                    times.append((time.perf_counter() - t1) * 1000)
                out[label] = {"times": times, "count": counts.pop() if len(counts) == 1 else counts}
            # DAFTAR by SMS (a signed Twilio webhook), then the composer's count for Palu until it includes them.
            palu = AREAS["Kota Palu 72.71"]
            before = reach_count(client, base, palu, headers)
            form = {
                "MessageSid": "SM" + uuid.uuid4().hex,
                "AccountSid": fake[1],
                "From": "+6285299900001",
                "To": "+6281100000000",
                "Body": "DAFTAR 72.71.01.1004",
            }
            url = f"{base}/webhooks/twilio/inbound"
            sig = RequestValidator(fake[2]).compute_signature(url, form)
            r = client.post(url, data=form, headers={"X-Twilio-Signature": sig})
            r.raise_for_status()
            registered = time.perf_counter()
            polls = 0
            while reach_count(client, base, palu, headers) <= before:
                polls += 1
                if time.perf_counter() - registered > 30:
                    raise SystemExit(f"DAFTAR not counted after 30 s: {r.text}")
            out["daftar_ms"] = (time.perf_counter() - registered) * 1000
            out["daftar_polls"] = polls + 1
    finally:
        stop(api)
    return out


def fanout_free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def approved_alert(
    engine: sa.Engine, codes: list[str], author: str, approver: str, *, outbox: bool = True
) -> tuple[int, Callable[[], None]]:
    """An approved SMS alert for `codes`, committed with its AlertApproved event (the fan-out in the enqueue
    outbox) unless not `outbox`: (alert id, a function handing the committed event to the broker, as the approve
    route does after its commit)."""
    from broadcast import events
    from broadcast.alerts import service as alerts
    from broadcast.alerts.schemas import AlertCreate
    from broadcast.db import session_factory
    from broadcast.users.models import User
    from broadcast.worker import celery
    from tests.factories import alert_payload

    s = session_factory(engine)()
    team = {u.username: u for u in s.scalars(sa.select(User))}
    payload = alert_payload("Actual", codes=codes)
    payload["channels"] = ["sms"]
    alert = alerts.create_alert(s, data=AlertCreate(**payload), author=team[author], sender="bpbd@x")
    alerts.submit_alert(s, alert_id=alert.id, actor=team[author])
    alerts.approve_alert(s, alert_id=alert.id, approver=team[approver], production=True)
    if outbox:
        alerts.start_delivery(s, alert=alert)
    s.commit()

    def send() -> None:
        try:
            events.send_committed(s, app=celery)
        finally:
            s.close()

    return alert.id, send


def measure_plan_here(db_url: str) -> dict[str, float]:
    """Planning in this process with its warm index loaded (no worker, no sending): ours vs the old path's
    read-and-match of every subscriber page (its inserts not counted)."""
    from broadcast.alerts import target_area
    from broadcast.alerts.models import Alert
    from broadcast.db import make_engine
    from broadcast.dispatch.plan import plan_alert
    from broadcast.subscribers import targeting, warm

    engine = make_engine(db_url)
    warm.index_for(engine).snapshot()
    alert_id, close = approved_alert(engine, ["33.15"], "op.grobogan", "apv.grobogan", outbox=False)
    close()
    with sa.orm.Session(engine) as s:
        t0 = time.perf_counter()
        planned = plan_alert(s, alert_id=alert_id)
        s.commit()
        ours = time.perf_counter() - t0
        alert = s.get(Alert, alert_id)
        assert alert is not None
        target = target_area.target_of(alert)
        spec = targeting.TargetSpec(target.codes, target.drawn)
        t0 = time.perf_counter()
        matched = 0
        for subs in targeting.iter_subscribers(s, chunk_size=20_000):
            matched += int(subs.within(subs.match(spec), "33.15").size)
        old = time.perf_counter() - t0
    engine.dispose()
    return {"rows": float(sum(map(len, planned.values()))), "ours_s": ours, "old_read_match_s": old, "old_n": matched}


def measure_plan(
    db_url: str, fake_proc: tuple[subprocess.Popen[str], str, str, str], grobogan: int
) -> dict[str, float]:
    """A real worker plans and sends a Grobogan alert with the whole table in place."""
    from broadcast.alerts.models import Alert
    from broadcast.db import make_engine
    from broadcast.dispatch.models import Delivery

    _, fake_url, sid, token = fake_proc
    env = fanout.worker_env(db_url, fake_url, sid, token)
    env["BROADCAST_BROKER_URL"] = BROKER
    os.environ.update({k: v for k, v in env.items() if k.startswith("BROADCAST_")})
    import redis

    redis.Redis.from_url(BROKER).flushdb()
    worker = start(
        [sys.executable, "-m", "broadcast.cli", "worker", "--concurrency", "2", "--loglevel", "WARNING"], env
    )
    engine = make_engine(db_url)
    try:
        fanout.wait_ready(BROKER)

        def approve(codes: list[str], author: str, approver: str) -> tuple[int, float]:
            alert_id, send = approved_alert(engine, codes, author, approver)
            at = time.time()
            send()
            return alert_id, at

        def settled(alert_id: int) -> None:
            """Until the alert is planned and every row of it is final."""
            open_rows = sa.select(sa.func.count()).where(
                Delivery.alert_id == alert_id, Delivery.state.in_(("pending", "sending"))
            )
            planned = sa.select(Alert.planned_at).where(Alert.id == alert_id)
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                while c.scalar(planned) is None or c.scalar(open_rows):
                    time.sleep(0.2)

        # Warm-up: a small Palu alert; both pool processes have loaded their index once it and their preload
        # are done (the preload started with the worker).
        warm_id, _ = approve(["72.71.01.1004"], "op.palu", "apv.sulteng")
        t_ready = time.perf_counter()
        with engine.connect() as c:
            while c.scalar(sa.select(Alert.planned_at).where(Alert.id == warm_id)) is None:
                time.sleep(0.2)
        warm_plan_s = time.perf_counter() - t_ready
        time.sleep(max(2.0, warm_plan_s))  # the other pool process's preload
        before = int(httpx.get(f"{fake_url}/_stats", timeout=60).json()["posts"])
        alert_id, approved_at = approve(["33.15"], "op.grobogan", "apv.grobogan")
        settled(alert_id)
        finished = time.time()
        with engine.connect() as c:
            published, planned = c.execute(
                sa.select(Alert.published_at, Alert.planned_at).where(Alert.id == alert_id)
            ).one()
            rows = c.scalar(sa.select(sa.func.count()).where(Delivery.alert_id == alert_id))
        posts = httpx.get(f"{fake_url}/_posts", timeout=60).json()["posts"][before:]
        first_at = min(at for at, _ in posts)
        return {
            "rows": float(rows or 0),
            "warm_up_plan_s": warm_plan_s,
            "plan_s": (planned - published).total_seconds(),
            "approval_to_planned_s": planned.timestamp() - approved_at,
            "first_request_ms": (first_at - approved_at) * 1000,
            "all_sent_s": finished - approved_at,
            "posts": float(len(posts)),
        }
    finally:
        stop(worker)
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000, help="subscribers in the table")
    parser.add_argument("--grobogan", type=int, default=20_000, help="of them in Kabupaten Grobogan")
    parser.add_argument("--reps", type=int, default=50, help="API requests per area")
    parser.add_argument("--old-reps", type=int, default=2, help="old path: full reads (each counts every area)")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--no-plan", action="store_true", help="stop after the API phase (no worker)")
    args = parser.parse_args()

    db_url = make_db()
    fake = fanout.start_fake()
    # Before anything imports the Celery app: it reads its broker (and the app its settings) at import.
    env = fanout.worker_env(db_url, fake[1], fake[2], fake[3])
    env["BROADCAST_BROKER_URL"] = BROKER
    os.environ.update({k: v for k, v in env.items() if k.startswith("BROADCAST_")})
    try:
        seed_team(db_url)
        t0 = time.perf_counter()
        rows, copy_s = bulk_load(db_url, population(args.size, args.grobogan))
        gen_s = time.perf_counter() - t0 - copy_s
        console.print(
            f"{rows:,} subscribers generated in {gen_s:.1f} s and copied in {copy_s:.1f} s "
            f"(peak RSS of this process {targeting_bench.peak_rss_mb():,.0f} MB)"
        )
        index = measure_index(db_url)
        console.print(f"warm index: {index}")
        old = measure_old(db_url, args.old_reps)
        console.print(f"old path (ms): {old}")
        api = measure_api(db_url, args.reps, (fake[1], fake[2], fake[3]))
        summary = {
            k: (v["count"], round(pct(v["times"], 50), 1), round(pct(v["times"], 99), 1))
            for k, v in api.items()
            if isinstance(v, dict)
        }
        console.print(
            f"API (count, p50 ms, p99 ms): {summary}; { ({k: v for k, v in api.items() if not isinstance(v, dict)}) }"
        )
        here: dict[str, float] | None = None
        plan: dict[str, float] | None = None
        if not args.no_plan:
            here = measure_plan_here(db_url)
            console.print(f"plan in this process: {here}")
            plan = measure_plan(db_url, fake, args.grobogan)
    finally:
        os.killpg(fake[0].pid, signal.SIGTERM)
        if not args.keep:
            fanout.drop_db(db_url)

    per_m = 1_000_000 / max(index["size"], 1)
    table = Table(title=f"Reach through the API, {index['size']:,} active subscribers in PostgreSQL")
    for col in ("area", "subscribers", "ours p50", "ours p99", "old path p50", "old path max"):
        table.add_column(col, justify="right" if col != "area" else "left")
    for label in AREAS:
        ours, before = api[label]["times"], old[label]
        table.add_row(
            label,
            f"{api[label]['count']:,}" if isinstance(api[label]["count"], int) else str(api[label]["count"]),
            f"{pct(ours, 50):.1f} ms",
            f"{pct(ours, 99):.1f} ms",
            f"{statistics.median(before):,.0f} ms" if before else "-",
            f"{max(before):,.0f} ms" if before else "-",
        )
    console.print(table)
    other = Table(title="Warm index, DAFTAR and planning")
    other.add_column("measure")
    other.add_column("value", justify="right")
    other.add_column("goal", justify="right")
    rows: list[tuple[str, str, str]] = [
        ("index load (once per process)", f"{index['load_s']:.2f} s", ""),
        ("index RSS per 1M subscribers (RSS growth of the load)", f"{index['rss_mb'] * per_m:.0f} MB", "≤ 100 MB"),
        ("index arrays per 1M subscribers (nbytes)", f"{index['array_mb'] * per_m:.0f} MB", "≤ 100 MB"),
        ("refresh with no changes (per use)", f"{index['refresh_ms']:.2f} ms", ""),
        *((f"in-process count, {label} (p50)", f"{index[f'count {label}']:.1f} ms", "") for label in AREAS),
        *(
            (
                f"in-memory count CPU, {label}: ours / previous (np.unique, lookup per channel)",
                f"{old[f'cpu ours {label}'][0]:.2f} / {old[f'cpu previous {label}'][0]:.2f} ms",
                "",
            )
            for label in AREAS
        ),
        ("API process RSS after preload", f"{api['rss_mb']:.0f} MB", ""),
        ("API start → first reach answered", f"{api['ready_s']:.1f} s", ""),
        ("DAFTAR by SMS → counted by the composer", f"{api['daftar_ms']:.0f} ms", "≤ 1 s"),
    ]
    if plan is not None and here is not None:
        rows += [
            ("warm-up alert plan (cold worker)", f"{plan['warm_up_plan_s']:.2f} s", ""),
            (f"plan of a {int(plan['rows']):,}-recipient Grobogan alert", f"{plan['plan_s']:.2f} s", "≤ 2 s"),
            (f"plan in-process, warm index ({int(here['rows']):,} rows)", f"{here['ours_s']:.2f} s", "≤ 2 s"),
            (
                f"old: read + match every subscriber ({int(here['old_n']):,} matched, inserts not counted)",
                f"{here['old_read_match_s']:.2f} s",
                "",
            ),
            ("approval → planned", f"{plan['approval_to_planned_s']:.2f} s", ""),
            ("approval → first provider request", f"{plan['first_request_ms']:.0f} ms", "≤ 300 ms"),
            ("approval → all sent", f"{plan['all_sent_s']:.1f} s", ""),
            ("provider requests / recipients", f"{int(plan['posts']):,} / {int(plan['rows']):,}", "equal"),
        ]
    for row in rows:
        other.add_row(*row)
    console.print(other)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    console.print(
        f"old path (the baseline): {args.old_reps} full reads in this process, each + one area's count = one "
        f"request (no HTTP); ours: {args.reps} requests per area through uvicorn (1 process) with httpx; "
        f"{os.cpu_count()} cores shared; load average at the end {load}; peak RSS of this process "
        f"{targeting_bench.peak_rss_mb():,.0f} MB."
    )


if __name__ == "__main__":
    main()

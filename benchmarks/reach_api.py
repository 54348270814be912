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
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import shapely
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


def population(n: int, grobogan: int, seed: int = 20261207) -> dict[str, np.ndarray]:
    """n subscribers: points weighted by population (exactly `grobogan` inside Grobogan), 10 % code-only."""
    from geo import boundaries

    _, lon, lat = targeting_bench.synthetic(n, seed=seed)
    home = boundaries.geometry_of("33.15")
    inside = shapely.contains_xy(home, lon, lat)
    keep_out = np.flatnonzero(~inside)[: n - grobogan]
    lon_in, lat_in = lon[inside][:grobogan], lat[inside][:grobogan]
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = home.bounds
    while lon_in.size < grobogan:
        x, y = rng.uniform(minx, maxx, 4 * grobogan), rng.uniform(miny, maxy, 4 * grobogan)
        ok = shapely.contains_xy(home, x, y)
        lon_in, lat_in = np.concatenate([lon_in, x[ok]])[:grobogan], np.concatenate([lat_in, y[ok]])[:grobogan]
    lon = np.concatenate([lon[keep_out], lon_in])
    lat = np.concatenate([lat[keep_out], lat_in])
    in_grobogan = np.arange(lon.size) >= keep_out.size
    # Each point carries the code of the kabupaten it lies in, as DAFTAR with a located point stores it.
    outlines = [(c, g) for c, g in boundaries.outlines("kabupaten_kota") if c[:2] in targeting_bench.PROVINSI]
    tree = shapely.STRtree([g for _, g in outlines])
    point_at, kab_at = tree.query(shapely.points(lon, lat), predicate="intersects")
    first = np.unique(point_at, return_index=True)[1]
    codes = np.full(lon.size, "", dtype="U13")
    codes[point_at[first]] = np.array([c for c, _ in outlines], dtype="U13")[kab_at[first]]
    codes[in_grobogan] = "33.15"  # on a border, the one it was drawn in
    # A tenth of those outside Grobogan registered by kabupaten code only (DAFTAR <kabupaten>): no point.
    kabs = [c for c, _ in outlines if c != "33.15"]
    outside = np.arange(keep_out.size)
    code_only = rng.choice(outside, size=outside.size // 10, replace=False)
    codes[code_only] = rng.choice(np.array(kabs, dtype="U13"), size=code_only.size)
    lon[code_only] = np.nan
    lat[code_only] = np.nan
    order = rng.permutation(lon.size)  # row order unrelated to place, as in a real table
    return {"lon": lon[order], "lat": lat[order], "codes": codes[order]}


def make_db() -> str:
    name = f"bench_reach_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return str(sa.make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False))


def bulk_load(db_url: str, pop: dict[str, np.ndarray]) -> float:
    """COPY the subscribers in; seconds taken (the version trigger and indexes included)."""
    import psycopg

    n = pop["lon"].size
    t0 = time.perf_counter()
    dsn = sa.make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cols = "phone, language, admin_code, lat, lon, channels, active, created_at"
        with cur.copy(f"COPY subscribers ({cols}) FROM STDIN") as copy:
            for start in range(0, n, 100_000):
                buf = io.StringIO()
                for i in range(start, min(n, start + 100_000)):
                    code = pop["codes"][i]
                    lon, lat = pop["lon"][i], pop["lat"][i]
                    point = "\\N\t\\N" if np.isnan(lon) else f"{lat:.6f}\t{lon:.6f}"
                    code_field = code or NULL
                    buf.write(f'+6281{i:09d}\tid\t{code_field}\t{point}\t["sms"]\tt\t2026-12-07 00:00:00+00\n')
                copy.write(buf.getvalue())
        cur.execute("ANALYZE subscribers")
    return time.perf_counter() - t0


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
    from broadcast.alerts import areas as area_geo
    from broadcast.alerts.schemas import AreaSpec
    from broadcast.subscribers import targeting

    for label, spec in AREAS.items():
        target = area_geo.target_of_areas([area_geo.resolve_area(AreaSpec(**spec))])
        times = []
        for _ in range(30):
            t0 = time.perf_counter()
            targeting.count_per_channel(index.snapshot(), targeting.TargetSpec(target.codes, target.drawn))
            times.append((time.perf_counter() - t0) * 1000)
        out[f"count {label}"] = statistics.median(times)
    del index, snap
    engine.dispose()
    return out


def measure_old(db_url: str, reps: int) -> dict[str, list[float]]:
    """The old path, in this process: a full read of every active subscriber, then the count."""
    from broadcast.alerts import areas as area_geo
    from broadcast.alerts.schemas import AreaSpec
    from broadcast.db import make_engine
    from broadcast.subscribers import targeting

    engine = make_engine(db_url)
    out: dict[str, list[float]] = {}
    for label, spec in AREAS.items():
        resolved = area_geo.resolve_area(AreaSpec(**spec))
        target = area_geo.target_of_areas([resolved])
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            with sa.orm.Session(engine) as s:
                subs = targeting.load_subscribers(s)
                targeting.count_per_channel(subs, targeting.TargetSpec(target.codes, target.drawn))
            times.append((time.perf_counter() - t0) * 1000)
            del subs
        out[label] = times
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
) -> tuple[int, int]:
    """An approved SMS alert for `codes`, with its fan-out in the enqueue outbox (unless not `outbox`): (alert
    id, outbox row id or 0)."""
    from broadcast.alerts import service as alerts
    from broadcast.alerts.routes import record_fanout
    from broadcast.alerts.schemas import AlertCreate
    from broadcast.db import session_scope
    from broadcast.users.models import User
    from tests.factories import alert_payload

    with session_scope(engine) as s:
        team = {u.username: u for u in s.scalars(sa.select(User))}
        payload = alert_payload("Actual", codes=codes)
        payload["channels"] = ["sms"]
        alert = alerts.create_alert(s, data=AlertCreate(**payload), author=team[author], sender="bpbd@x")
        alerts.submit_alert(s, alert_id=alert.id, actor=team[author])
        alerts.approve_alert(s, alert_id=alert.id, approver=team[approver], production=True)
        return alert.id, record_fanout(s, alert) if outbox else 0


def measure_plan_here(db_url: str) -> dict[str, float]:
    """Planning in this process with its warm index loaded (no worker, no sending): ours vs the old path's
    read-and-match of every subscriber page (its inserts not counted)."""
    from broadcast.alerts import areas as area_geo
    from broadcast.alerts.models import Alert
    from broadcast.db import make_engine
    from broadcast.dispatch import service as dispatch
    from broadcast.subscribers import targeting, warm

    engine = make_engine(db_url)
    warm.index_for(engine).snapshot()
    alert_id, _ = approved_alert(engine, ["33.15"], "op.grobogan", "apv.grobogan", outbox=False)
    with sa.orm.Session(engine) as s:
        t0 = time.perf_counter()
        planned = dispatch.plan_alert(s, alert_id=alert_id)
        s.commit()
        ours = time.perf_counter() - t0
        alert = s.get(Alert, alert_id)
        assert alert is not None
        target = area_geo.target_of(alert)
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
        from broadcast.alerts.routes import send_fanout

        def approve(codes: list[str], author: str, approver: str) -> tuple[int, float]:
            alert_id, row_id = approved_alert(engine, codes, author, approver)
            at = time.time()
            send_fanout(engine, row_id)
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
    parser.add_argument("--old-reps", type=int, default=2, help="old full-load requests per area")
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
        t0 = time.perf_counter()
        pop = population(args.size, args.grobogan)
        gen_s = time.perf_counter() - t0
        seed_team(db_url)
        copy_s = bulk_load(db_url, pop)
        del pop
        console.print(f"{args.size:,} subscribers generated in {gen_s:.1f} s, COPY in {copy_s:.1f} s")
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
        if args.no_plan:
            return
        here = measure_plan_here(db_url)
        console.print(f"plan in this process: {here}")
        plan = measure_plan(db_url, fake, args.grobogan)
    finally:
        os.killpg(fake[0].pid, signal.SIGTERM)
        if not args.keep:
            fanout.drop_db(db_url)

    per_m = 1_000_000 / max(index["size"], 1)
    table = Table(title=f"Reach through the API, {index['size']:,} active subscribers in PostgreSQL")
    for col in ("area", "subscribers", "ours p50", "ours p99", "old p50", "old p99"):
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
    other.add_row("index load (once per process)", f"{index['load_s']:.2f} s", "")
    other.add_row(
        "index RSS per 1M subscribers (RSS growth of the load)", f"{index['rss_mb'] * per_m:.0f} MB", "≤ 100 MB"
    )
    other.add_row("index arrays per 1M subscribers (nbytes)", f"{index['array_mb'] * per_m:.0f} MB", "≤ 100 MB")
    other.add_row("refresh with no changes (per use)", f"{index['refresh_ms']:.2f} ms", "")
    for label in AREAS:
        other.add_row(f"in-process count, {label} (p50)", f"{index[f'count {label}']:.1f} ms", "")
    other.add_row("API process RSS after preload", f"{api['rss_mb']:.0f} MB", "")
    other.add_row("API start → first reach answered", f"{api['ready_s']:.1f} s", "")
    other.add_row("DAFTAR by SMS → counted by the composer", f"{api['daftar_ms']:.0f} ms", "≤ 1 s")
    other.add_row("warm-up alert plan (cold worker)", f"{plan['warm_up_plan_s']:.2f} s", "")
    other.add_row(f"plan of a {int(plan['rows']):,}-recipient Grobogan alert", f"{plan['plan_s']:.2f} s", "≤ 2 s")
    other.add_row(f"plan in-process, warm index ({int(here['rows']):,} rows)", f"{here['ours_s']:.2f} s", "≤ 2 s")
    other.add_row(
        f"old: read + match every subscriber ({int(here['old_n']):,} matched, inserts not counted)",
        f"{here['old_read_match_s']:.2f} s",
        "",
    )
    other.add_row("approval → planned", f"{plan['approval_to_planned_s']:.2f} s", "")
    other.add_row("approval → first provider request", f"{plan['first_request_ms']:.0f} ms", "≤ 300 ms")
    other.add_row("approval → all sent", f"{plan['all_sent_s']:.1f} s", "")
    other.add_row("provider requests / recipients", f"{int(plan['posts']):,} / {int(plan['rows']):,}", "equal")
    console.print(other)
    console.print(
        f"old path: {args.old_reps} requests per area in this process (full read + count, no HTTP); ours: "
        f"{args.reps} requests per area through uvicorn (1 process) with httpx; {os.cpu_count()} cores shared."
    )


if __name__ == "__main__":
    main()

"""Benchmark: geo.targeting.SubscriberIndex against PostGIS ST_Intersects on the same synthetic subscribers.

Subscribers are random points inside the kabupaten/kota of Java and Sulawesi, in proportion to population
(fixed seed). Each size runs in its own child process so its peak RSS is its own.

    python benchmarks/targeting.py --sizes 1000000 10000000
    python benchmarks/targeting.py --sizes 1000000 --no-postgis
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from geo import boundaries
from geo.areas import build_area
from geo.reach import population_by_kode
from geo.targeting import SubscriberIndex, brute_force_match

PROVINSI = ("31", "32", "33", "34", "35", "36", "71", "72", "73", "74", "75", "76")  # Java and Sulawesi
QUERIES = {
    "Kabupaten Grobogan 33.15": {"codes": ["33.15"]},
    "Kota Palu 72.71": {"codes": ["72.71"]},
    "Merapi 25 km circle": {"circle": {"lon": 110.446, "lat": -7.540, "radius_km": 25}},
}
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def points_in(geom: BaseGeometry, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """k uniform random points (lon, lat) inside `geom`, by rejection sampling in its bounding box."""
    minx, miny, maxx, maxy = geom.bounds
    fill = max(geom.area / ((maxx - minx) * (maxy - miny)), 0.01)
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    got = 0
    if k == 0:
        return np.array([]), np.array([])
    while got < k:
        m = int((k - got) / fill * 1.2) + 16
        x, y = rng.uniform(minx, maxx, m), rng.uniform(miny, maxy, m)
        ok = shapely.contains_xy(geom, x, y)
        xs.append(x[ok])
        ys.append(y[ok])
        got += int(ok.sum())
    return np.concatenate(xs)[:k], np.concatenate(ys)[:k]


def synthetic(n: int, seed: int = 20260924) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n (id, lon, lat) points inside Java and Sulawesi kabupaten, weighted by population."""
    rng = np.random.default_rng(seed)
    pop = population_by_kode()
    kabs = [(c, g) for c, g in boundaries.outlines("kabupaten_kota") if c[:2] in PROVINSI]
    weights = np.array([pop.get(c, 0) for c, _ in kabs], dtype=float)
    counts = rng.multinomial(n, weights / weights.sum())
    lons, lats = [], []
    for (_, geom), k in zip(kabs, counts, strict=True):
        x, y = points_in(geom, int(k), rng)
        lons.append(x)
        lats.append(y)
    lon, lat = np.concatenate(lons), np.concatenate(lats)
    ids = rng.permutation(n).astype(np.int64) + 1  # ids unrelated to position, as in a real table
    return ids, lon, lat


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median_ms(fn: Any, runs: int) -> tuple[float, Any]:
    """Median wall time of fn() over runs (after one warm-up), and its last result."""
    result = fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), result


def run_postgis(ids: np.ndarray, lon: np.ndarray, lat: np.ndarray, areas: dict[str, Any], runs: int) -> dict:
    """Load the points into a scratch PostGIS database with a GiST index; time default and tuned queries."""
    import psycopg
    from psycopg import sql

    db = f"bench_geo_{os.getpid()}"
    admin = psycopg.connect(PG_URL, autocommit=True)
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    out: dict[str, Any] = {}
    try:
        url = PG_URL.rsplit("/", 1)[0] + "/" + db
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION postgis")
            conn.execute("CREATE UNLOGGED TABLE staging (id bigint, lon float8, lat float8)")
            t0 = time.perf_counter()
            with conn.cursor().copy("COPY staging (id, lon, lat) FROM STDIN") as copy:
                step = 500_000
                for s in range(0, ids.size, step):
                    rows = zip(
                        ids[s : s + step].tolist(),
                        lon[s : s + step].tolist(),
                        lat[s : s + step].tolist(),
                        strict=True,
                    )
                    # repr() of a float round-trips exactly, so PostGIS sees the very same doubles as we do.
                    copy.write("".join(f"{i}\t{x!r}\t{y!r}\n" for i, x, y in rows))
            conn.execute(
                "CREATE TABLE subs AS SELECT id, ST_SetSRID(ST_MakePoint(lon, lat), 4326) AS geom FROM staging"
            )
            conn.execute("DROP TABLE staging")
            conn.execute("CREATE INDEX subs_geom ON subs USING gist (geom)")
            conn.execute("VACUUM ANALYZE subs")
            out["load_s"] = time.perf_counter() - t0
        # Default: a parameterised query as an application would write it; psycopg prepares it server-side
        # after 5 executions, and PostgreSQL may then switch to a generic plan.
        with psycopg.connect(url) as conn:
            for name, geom in areas.items():
                wkb = shapely.to_wkb(geom)

                def q_default(conn: Any = conn, wkb: bytes = wkb) -> np.ndarray:
                    cur = conn.execute(
                        "SELECT id FROM subs WHERE ST_Intersects(geom, ST_GeomFromWKB(%s, 4326))", (wkb,)
                    )
                    return np.sort(np.fromiter((r[0] for r in cur), dtype=np.int64))

                out[f"default/{name}"] = median_ms(q_default, runs)
        # Tuned: no parallel workers (start-up cost dominates small queries), more work_mem, custom plans,
        # and the geometry inlined as a literal so the planner sees the real polygon every time.
        with psycopg.connect(url, prepare_threshold=None) as conn:
            conn.execute("SET max_parallel_workers_per_gather = 0")
            conn.execute("SET work_mem = '64MB'")
            conn.execute("SET plan_cache_mode = force_custom_plan")
            for name, geom in areas.items():
                stmt = sql.SQL("SELECT id FROM subs WHERE ST_Intersects(geom, ST_GeomFromWKB(decode({}, 'hex'), 4326))")
                stmt = stmt.format(sql.Literal(shapely.to_wkb(geom, hex=True)))
                text = stmt.as_string(conn)

                def q_tuned(conn: Any = conn, text: str = text) -> np.ndarray:
                    cur = conn.execute(text, prepare=False)
                    return np.sort(np.fromiter((r[0] for r in cur), dtype=np.int64))

                out[f"tuned/{name}"] = median_ms(q_tuned, runs)
    finally:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
        admin.close()
    return out


def one_size(n: int, runs: int, postgis: bool) -> dict[str, Any]:
    """Generate n subscribers, time our index (and PostGIS), check identical results; return the figures."""
    t0 = time.perf_counter()
    ids, lon, lat = synthetic(n)
    gen_s = time.perf_counter() - t0
    areas = {name: build_area(spec).geometry for name, spec in QUERIES.items()}
    t0 = time.perf_counter()
    index = SubscriberIndex(ids, lon, lat)
    build_s = time.perf_counter() - t0
    res: dict[str, Any] = {"n": n, "gen_s": gen_s, "build_s": build_s, "queries": {}}
    for name, geom in areas.items():
        ms, got = median_ms(lambda geom=geom: index.match(geom), runs)
        ref = brute_force_match(geom, ids, lon, lat)
        assert np.array_equal(got, ref), f"{name}: index differs from brute force"
        res["queries"][name] = {"ours_ms": ms, "matched": int(got.size), "ids": got}
    res["ours_peak_rss_mb"] = peak_rss_mb()
    if postgis:
        pg = run_postgis(ids, lon, lat, areas, runs)
        res["pg_load_s"] = pg["load_s"]
        for name in areas:
            q = res["queries"][name]
            for mode in ("default", "tuned"):
                ms, pg_ids = pg[f"{mode}/{name}"]
                assert np.array_equal(pg_ids, q["ids"]), f"{name}: PostGIS {mode} returned a different set"
                q[f"pg_{mode}_ms"] = ms
    for q in res["queries"].values():
        del q["ids"]
    res["peak_rss_mb"] = peak_rss_mb()
    return res


def main() -> None:
    """Parse flags, run each size in a child process, print one table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-postgis", action="store_true")
    parser.add_argument("--postgis-max", type=int, default=10_000_000, help="skip PostGIS above this size")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_size(args.child, args.runs, not args.no_postgis)))
        return

    from rich.console import Console
    from rich.table import Table

    results = []
    for n in args.sizes:
        cmd = [sys.executable, __file__, "--child", str(n), "--runs", str(args.runs)]
        if args.no_postgis or n > args.postgis_max:
            cmd.append("--no-postgis")
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    table = Table(title=f"Targeting: SubscriberIndex vs PostGIS ST_Intersects + GiST (median of {args.runs} runs, ms)")
    for col in ("subscribers", "query", "matched", "ours", "PostGIS default", "PostGIS tuned", "tuned/ours"):
        table.add_column(col, justify="right")
    for r in results:
        for name, q in r["queries"].items():
            pg_d, pg_t = q.get("pg_default_ms"), q.get("pg_tuned_ms")
            table.add_row(
                f"{r['n']:,}",
                name,
                f"{q['matched']:,}",
                f"{q['ours_ms']:.2f}",
                "-" if pg_d is None else f"{pg_d:.1f}",
                "-" if pg_t is None else f"{pg_t:.1f}",
                "-" if pg_t is None else f"{pg_t / q['ours_ms']:.0f}x",
            )
    console = Console(width=150)
    console.print(table)
    for r in results:
        extra = f", PostGIS load+index {r['pg_load_s']:.1f} s" if "pg_load_s" in r else ", PostGIS not run"
        console.print(
            f"{r['n']:,}: generate {r['gen_s']:.1f} s, index build {r['build_s']:.2f} s, peak RSS after our "
            f"queries {r['ours_peak_rss_mb']:.0f} MB (process peak {r['peak_rss_mb']:.0f} MB){extra}; "
            "result sets identical to brute force" + (" and PostGIS" if "pg_load_s" in r else "")
        )


if __name__ == "__main__":
    main()

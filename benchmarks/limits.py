"""The limiter (broadcast.limits) against the code it replaced, on the bundled Redis 6.2 that `broadcast serve` runs
and on a Redis 7 server.

  baseline — the old counters: a pipeline of INCR + EXPIRE ... NX, checked before the count for sign-in
             (GET, then verify the password, then INCR);
  ours     — one Lua script (INCRBY + PTTL + PEXPIRE), counted before the check.

For each store: counter operations per second from one client, and how many of N parallel wrong sign-ins got
their password checked with a limit of 5 (each check takes --verify-ms, like argon2).

    python benchmarks/limits.py --redis redis://127.0.0.1:6379/9 --parallel 60
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import redis
from rich.console import Console
from rich.table import Table

from broadcast import limits
from broadcast.serve import redis_binary

console = Console(width=160)
LIMIT = 5


def start_bundled(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    sock = folder / "redis.sock"
    proc = subprocess.Popen(
        [redis_binary(), "--port", "0", "--unixsocket", str(sock), "--save", "", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"unix://{sock}"
    for _ in range(300):
        try:
            redis.Redis.from_url(url).ping()
            return proc, url
        except (redis.RedisError, OSError):
            time.sleep(0.05)
    raise SystemExit("bundled redis did not start")


def ops_per_second(fn: Callable[[int], None], n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - start)


def old_hit(client: redis.Redis, key: str) -> None:
    pipe = client.pipeline()
    pipe.incr(key)
    pipe.expire(key, 600, nx=True)
    pipe.execute()


def parallel_checked(check_then_count: bool, url: str, parallel: int, verify_s: float) -> int:
    """How many of `parallel` simultaneous wrong sign-ins had their password checked (limit LIMIT)."""
    client = redis.Redis.from_url(url)
    counters = limits.RedisCounters(client)
    key = f"bench:login:{time.monotonic_ns()}"
    checked = 0
    lock = threading.Lock()
    barrier = threading.Barrier(parallel)

    def one() -> None:
        nonlocal checked
        barrier.wait()
        if check_then_count:
            if int(client.get(key) or 0) >= LIMIT:
                return
            time.sleep(verify_s)
            client.incr(key)
        else:
            if counters.hit([limits.Window(key, 600)])[0].n > LIMIT:
                return
            time.sleep(verify_s)
        with lock:
            checked += 1

    threads = [threading.Thread(target=one) for _ in range(parallel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    client.delete(key)
    return checked


def measure(name: str, url: str, args: argparse.Namespace, table: Table) -> None:
    client = redis.Redis.from_url(url)
    version = client.info("server")["redis_version"]
    counters = limits.RedisCounters(client)
    try:
        old_hit(client, "bench:probe")
        baseline_ops = f"{ops_per_second(lambda i: old_hit(client, f'bench:old:{i % 100}'), args.ops):,.0f}"
    except redis.ResponseError as exc:
        baseline_ops = f"fails ({str(exc)[:40]}): old code let everything through"
    ours_ops = ops_per_second(lambda i: counters.hit([limits.Window(f"bench:new:{i % 100}", 600)]), args.ops)
    old_checked = parallel_checked(True, url, args.parallel, args.verify_ms / 1000)
    new_checked = parallel_checked(False, url, args.parallel, args.verify_ms / 1000)
    table.add_row(
        f"{name} (Redis {version})",
        baseline_ops,
        f"{ours_ops:,.0f}",
        f"{old_checked}/{args.parallel}",
        f"{new_checked}/{args.parallel}",
    )
    client.delete(*[f"bench:old:{i}" for i in range(100)], *[f"bench:new:{i}" for i in range(100)], "bench:probe")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/9", help="a Redis 7 to measure on")
    parser.add_argument("--ops", type=int, default=5000)
    parser.add_argument("--parallel", type=int, default=60)
    parser.add_argument("--verify-ms", type=float, default=60.0, help="time a password check takes")
    args = parser.parse_args()
    table = Table(title=f"limiter: counter ops/s (one client) and parallel wrong sign-ins checked, limit {LIMIT}")
    for col in ("store", "baseline ops/s", "ours ops/s", "baseline checked", "ours checked"):
        table.add_column(col)
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_bundled(Path(tmp))
        try:
            measure("bundled (broadcast serve)", url, args, table)
        finally:
            proc.terminate()
            proc.wait()
    measure("server", args.redis, args, table)
    console.print(table)


if __name__ == "__main__":
    main()

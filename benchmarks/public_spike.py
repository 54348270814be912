"""Public pages under a spike: everyone opens the alert page at once after a strong earthquake (issue 20).

Starts the real `broadcast serve` (public cache on, the default) and, on the same data, a second API process with
the cache off (BROADCAST_PUBLIC_CACHE=0), as `serve` starts it (uvicorn, one process). With 1 and then 50
published exercise alerts, `wrk -t2 -c200` for --duration seconds on each route of each API in turn: the alert
page, the area page, the exercise Atom feed, /cek?kode= and, as the ceiling, uvicorn serving a no-op ASGI app.
While the alert page is under load, approval -> visible is measured as benchmarks/publish_latency.py does (from
the approve response until the page answers 200 and the feed lists it, polled every 5 ms).

Goals: >= 3,000 req/s and p99 <= 100 ms on each public route, approval -> visible <= 200 ms, on a 2-core machine.

    apt-get install wrk
    PYTHONPATH=$PWD python benchmarks/public_spike.py              # 15 s per run (about 6 minutes)
    PYTHONPATH=$PWD python benchmarks/public_spike.py --duration 3 # a quick look

The /cek limit per client address is raised for the run (wrk is one address; the limit itself is not measured).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.factories import alert_payload  # noqa: E402

GOAL_RPS = 3000.0
GOAL_P99_MS = 100.0
GOAL_VISIBLE_MS = 200.0
CONNECTIONS = 200
# The ceiling: the same uvicorn serving an ASGI app that answers "ok" to everything, in the same run.
NOOP = "no-op ASGI app (ceiling)"
NOOP_APP = """
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})
"""


@dataclass(frozen=True)
class Run:
    alerts: int
    cache: str
    route: str
    rps: float
    p99_ms: float
    errors: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], bool], *, since: float | None = None, timeout_s: float = 30.0) -> float:
    """Milliseconds from `since` (now by default) until `check()` is true."""
    start = time.perf_counter() if since is None else since
    while time.perf_counter() - start < timeout_s:
        if check():
            return (time.perf_counter() - start) * 1000
        time.sleep(0.005)
    raise TimeoutError("not visible in time")


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code in (200, 404)
    except httpx.HTTPError:
        return False


def login(base: str, user: str, password: str) -> dict[str, str]:
    token = httpx.post(f"{base}/api/v1/auth/login", json={"username": user, "password": password}).json()
    return {"Authorization": f"Bearer {token['access_token']}"}


class Publisher:
    """Creates, submits and approves exercise alerts through the API as two demo users."""

    def __init__(self, base: str, password: str) -> None:
        self.base = base
        self.op = login(base, "op.palu", password)
        self.apv = login(base, "apv.sulteng", password)
        self.n = 0
        self.last_id, self.last_wall = 0, 0.0

    def approve_new(self) -> tuple[str, str, float]:
        """(identifier, verify code, perf_counter at the approve response)."""
        self.n += 1
        payload = alert_payload("Exercise")
        payload["infos"][0]["headline"] = f"Latihan gempa {self.n}"
        alert = httpx.post(f"{self.base}/api/v1/alerts", json=payload, headers=self.op, timeout=30).json()
        httpx.post(f"{self.base}/api/v1/alerts/{alert['id']}/submit", headers=self.op, timeout=30)
        approved = httpx.post(f"{self.base}/api/v1/alerts/{alert['id']}/approve", headers=self.apv, timeout=30)
        assert approved.status_code == 202, approved.text
        self.last_id, self.last_wall = alert["id"], time.time()
        return alert["identifier"], alert["verify_code"], time.perf_counter()

    def publish(self) -> tuple[str, str]:
        ident, code, _ = self.approve_new()
        wait_for(lambda: _ok(f"{self.base}/peringatan/{ident}"), timeout_s=60)
        return ident, code


def wrk(url: str, duration_s: int) -> tuple[float, float, int]:
    """Requests/s, p99 ms and non-2xx/3xx answers plus socket errors of one wrk run."""
    out = subprocess.run(
        ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{duration_s}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    assert p99 is not None, out
    p99_ms = float(p99.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    errors = (
        0 if url.endswith("/__no-op__") else sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses:\s+(\d+)", out))
    )
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    return rps, p99_ms, errors


def visible_while_loaded(pub: Publisher, base: str, n: int) -> tuple[list[float], list[float]]:
    """Approval -> visible (page 200 and in the exercise feed) for n alerts, one after another; and approval ->
    the worker's publish (the alert's published_at, stamped just before its commit), to tell the worker's part
    from the API's under the spike."""
    times, published = [], []
    for _ in range(n):
        ident, _, t0 = pub.approve_new()
        alert_id, approved_wall = pub.last_id, pub.last_wall
        page = wait_for(lambda i=ident: _ok(f"{base}/peringatan/{i}"), since=t0)  # type: ignore[misc]
        feed = wait_for(lambda i=ident: i in httpx.get(f"{base}/feed/latihan.xml", timeout=5).text, since=t0)  # type: ignore[misc]
        times.append(max(page, feed))
        stamp = httpx.get(f"{base}/api/v1/alerts/{alert_id}", headers=pub.op, timeout=30).json()["published_at"]
        at = datetime.fromisoformat(stamp)
        at = at if at.tzinfo else at.replace(tzinfo=UTC)  # SQLite hands back naive UTC
        published.append((at.timestamp() - approved_wall) * 1000)
    return times, published


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds per wrk run")
    parser.add_argument("--probes", type=int, default=5, help="alerts approved while the alert page is loaded")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    workdir = Path(tempfile.mkdtemp(prefix="bench-spike-"))
    port, plain_port, noop_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROADCAST_")}
    env["BROADCAST_CHECK_CODE_LIMIT_PER_IP"] = str(10**9)
    serve = subprocess.Popen(
        [sys.executable, "-m", "broadcast.cli", "serve", "--port", str(port)],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    procs = [serve]
    apis = {"cached": f"http://127.0.0.1:{port}", "uncached": f"http://127.0.0.1:{plain_port}"}
    runs: list[Run] = []
    visible: dict[str, list[float]] = {}
    published: dict[str, list[float]] = {}
    try:
        wait_for(lambda: _ok(f"{apis['cached']}/healthz"), timeout_s=180)
        data = workdir / "broadcast-data"
        plain_env = {**env, "BROADCAST_DATA_DIR": str(data.resolve()), "BROADCAST_PUBLIC_CACHE": "0"}
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "broadcast.api.asgi:app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(plain_port),
                    "--no-access-log",
                    "--no-proxy-headers",
                ],
                cwd=workdir,
                env=plain_env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
        wait_for(lambda: _ok(f"{apis['uncached']}/healthz"), timeout_s=180)
        (workdir / "noop_app.py").write_text(NOOP_APP)
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "noop_app:app",
                    "--app-dir",
                    str(workdir),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(noop_port),
                    "--no-access-log",
                ],
                cwd=workdir,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
        noop = f"http://127.0.0.1:{noop_port}/"
        wait_for(lambda: _ok(noop), timeout_s=60)
        pub = Publisher(apis["cached"], (data / "demo-password").read_text().strip())
        ident, code = pub.publish()
        for count in (1, 50):
            while pub.n < count:
                pub.publish()
            routes = {
                "alert page": f"/peringatan/{ident}",
                "area page": "/wilayah/72.71",
                "Atom feed (latihan)": "/feed/latihan.xml",
                "/cek?kode=": f"/cek?kode={code}",
            }
            for cache, base in apis.items():
                for route, path in routes.items():
                    # The previous run's backlog drains first (the uncached process can be seconds behind).
                    wait_for(lambda url=base + path: _answers(url), timeout_s=120)  # type: ignore[misc]
                    probe: threading.Thread | None = None
                    if route == "alert page" and count == 50:
                        key = f"{cache}, 50 alerts"

                        def run_probe(key: str = key, base: str = base) -> None:
                            time.sleep(1)
                            visible[key], published[key] = visible_while_loaded(pub, base, args.probes)

                        probe = threading.Thread(target=run_probe)
                        probe.start()
                    rps, p99, errors = wrk(base + path, args.duration)
                    if probe is not None:
                        probe.join()
                    runs.append(Run(count, cache, route, rps, p99, errors))
                    print(
                        f"{count:>2} alerts  {cache:<8}  {route:<22} {rps:>8.0f} req/s  p99 {p99:>7.1f} ms  "
                        f"errors {errors}",
                        flush=True,
                    )
            rps, p99, errors = wrk(noop, args.duration)
            runs.append(Run(count, "-", NOOP, rps, p99, errors))
            print(f"{count:>2} alerts  ceiling   {NOOP:<22} {rps:>8.0f} req/s  p99 {p99:>7.1f} ms", flush=True)
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
        for proc in reversed(procs):
            proc.wait(timeout=60)
        shutil.rmtree(workdir, ignore_errors=True)
    report(runs, visible, published, args.duration)


def report(
    runs: list[Run], visible: dict[str, list[float]], published: dict[str, list[float]], duration_s: int
) -> None:
    console = Console()
    ceiling = {r.alerts: r.rps for r in runs if r.route == NOOP}
    table = Table(title=f"Public routes under wrk -t2 -c{CONNECTIONS} -d{duration_s}s (`broadcast serve`, 1 uvicorn)")
    for col in ("alerts", "cache", "route", "req/s", "p99 ms", "errors", "of no-op", "goal"):
        table.add_column(col, justify="left" if col in ("cache", "route") else "right")
    for r in runs:
        met = r.route == NOOP or (r.rps >= GOAL_RPS and r.p99_ms <= GOAL_P99_MS and r.errors == 0)
        share = r.rps / ceiling[r.alerts] if ceiling.get(r.alerts) else 0.0
        table.add_row(
            str(r.alerts),
            r.cache,
            r.route,
            f"{r.rps:,.0f}",
            f"{r.p99_ms:.1f}",
            str(r.errors),
            f"{share:.0%}",
            "" if r.route == NOOP else ("met" if met else "NOT met"),
        )
    console.print(table)
    vis = Table(title="Approval -> visible (page and exercise feed) while the alert page takes the spike")
    for col in ("where", "n", "p50 ms", "max ms", "worker published, p50 ms", f"goal <= {GOAL_VISIBLE_MS:.0f} ms"):
        vis.add_column(col, justify="left" if col == "where" else "right")
    for where, values in visible.items():
        vis.add_row(
            where,
            str(len(values)),
            f"{statistics.median(values):.0f}",
            f"{max(values):.0f}",
            f"{statistics.median(published[where]):.0f}",
            "met" if max(values) <= GOAL_VISIBLE_MS else "NOT met",
        )
    console.print(vis)
    print(
        f"Goals per public route: >= {GOAL_RPS:,.0f} req/s and p99 <= {GOAL_P99_MS:.0f} ms with no errors. The no-op\n"
        "(uvicorn serving an ASGI app that answers 'ok') is the ceiling in the same run; 'of no-op' is each route's\n"
        "share of it. wrk, the API, its Celery worker and beat share the machine's cores."
    )


if __name__ == "__main__":
    main()

"""Area uploads against the API under uvicorn (issue 22): what an amplification upload costs now.

Posts (1) a zip of a few dozen KB holding a 48 MB .shp (3M vertices), (2) the largest accepted upload (a
10,000-vertex polygon), and (3) GeoJSON nested 3,000 deep, while a second client asks /healthz every 20 ms.
Prints, per upload: the answer, its size, how long it took, the slowest /healthz during it, and the API's RSS
growth. The issue measured the code before the caps: 200 with a 46 MB body, +880 MB RSS, the event loop blocked
for 8 s, and a 500 for the nested GeoJSON.

    python benchmarks/upload_caps.py [--baseline /path/to/an/older/checkout]

With --baseline, the same uploads go to the API run from that checkout too (PYTHONPATH), for a side-by-side.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psutil
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SECRET = "benchmark-upload-secret-key-0123456789"  # noqa: S105 - a throwaway local value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def uploads() -> list[tuple[str, str, bytes]]:
    from geo.areas import MAX_VERTICES
    from tests.reliability.test_hardening import _shapefile_zip

    deep = (
        b'{"type":"GeometryCollection","geometries":[' * 3_000
        + b'{"type":"Polygon","coordinates":[[[120,-1],[121,-1],[121,0],[120,-1]]]}'
        + b"]}" * 3_000
    )
    return [
        ("zip with a 48 MB .shp (3M vertices)", "area.zip", _shapefile_zip(3_000_000)),
        (f"largest accepted: {MAX_VERTICES:,} vertices", "area.zip", _shapefile_zip(MAX_VERTICES - 10)),
        ("GeoJSON nested 3,000 deep", "area.geojson", deep),
    ]


async def measure(base: str, headers: dict[str, str], name: str, data: bytes, pid: int) -> dict[str, object]:
    rss_before = psutil.Process(pid).memory_info().rss
    slowest = 0.0
    done = asyncio.Event()

    async with httpx.AsyncClient(base_url=base, timeout=300) as client:

        async def probe() -> None:
            nonlocal slowest
            while not done.is_set():
                t0 = time.perf_counter()
                await client.get("/healthz")
                slowest = max(slowest, (time.perf_counter() - t0) * 1000)
                await asyncio.sleep(0.02)

        prober = asyncio.create_task(probe())
        await asyncio.sleep(0.2)
        t0 = time.perf_counter()
        r = await client.post("/api/v1/areas/upload", files={"file": (name, data)}, headers=headers)
        took = (time.perf_counter() - t0) * 1000
        done.set()
        await prober
    rss_after = psutil.Process(pid).memory_info().rss
    kind = r.json().get("type", "") if r.headers.get("content-type", "").startswith("application/problem") else ""
    return {
        "answer": f"{r.status_code} {kind}".strip(),
        "body": len(r.content),
        "took_ms": took,
        "healthz_max_ms": slowest,
        "rss_mb": (rss_after - rss_before) / 1e6,
    }


def run_api(code: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    serve = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "broadcast.api.asgi:app", "--port", str(port), "--log-level", "warning"],
        cwd=code,
        env=env | {"PYTHONPATH": str(code)},
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return serve, base
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("the API did not start")
        time.sleep(0.2)


def main() -> None:
    import argparse

    from broadcast import migrate
    from broadcast.db import make_engine, session_scope
    from broadcast.users.security import issue_token
    from tests.factories import make_team

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, default=None, help="an older checkout to compare with")
    args = parser.parse_args()
    name = f"bench_upload_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    db_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    serve = None
    rows: list[tuple[str, str, int, dict[str, object]]] = []
    try:
        migrate.upgrade(db_url)
        engine = make_engine(db_url)
        with session_scope(engine) as s:
            operator_id = make_team(s)["operator"].id
        engine.dispose()
        headers = {"Authorization": f"Bearer {issue_token(SECRET, user_id=operator_id, token_version=0)}"}
        env = {k: v for k, v in os.environ.items() if not k.startswith("BROADCAST_")}
        env |= {
            "BROADCAST_DATABASE_URL": db_url,
            "BROADCAST_SECRET_KEY": SECRET,
            "BROADCAST_ENVIRONMENT": "test",
            "BROADCAST_MAX_BODY_BYTES": "5100000",
        }
        codes = [("ours", ROOT)] + ([("baseline", args.baseline.resolve())] if args.baseline else [])
        for which, code in codes:
            serve, base = run_api(code, env)
            try:
                for label, filename, data in uploads():
                    result = asyncio.run(measure(base, headers, filename, data, serve.pid))
                    rows.append((which, label, len(data), result))
            finally:
                serve.send_signal(signal.SIGTERM)
                serve.wait(timeout=60)
                serve = None
    finally:
        if serve is not None:
            serve.send_signal(signal.SIGTERM)
            serve.wait(timeout=60)
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    table = Table(title="Area uploads (uvicorn, one process)")
    for col in ("code", "upload", "sent KB", "answer", "body KB", "took ms", "slowest /healthz ms", "RSS growth MB"):
        table.add_column(col, justify="left" if col in ("code", "upload", "answer") else "right")
    for which, label, size, r in rows:
        table.add_row(
            which,
            label,
            f"{size / 1000:.0f}",
            str(r["answer"]),
            f"{int(r['body']) / 1000:.1f}",
            f"{r['took_ms']:.0f}",
            f"{r['healthz_max_ms']:.0f}",
            f"{r['rss_mb']:.0f}",
        )
    Console(width=200).print(table)
    print("Issue 22 measured the code before the caps: 200 with a 46 MB body, +880 MB, event loop blocked 8 s; 500.")


if __name__ == "__main__":
    main()

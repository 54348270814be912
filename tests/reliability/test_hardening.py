"""Nothing fails open (issue 22, second half): event streams, uploads, outbound requests, CSV exports."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn

from broadcast.api.app import create_app
from broadcast.db import get_engine
from broadcast.settings import Settings
from tests.reliability.helpers import world

pytestmark = pytest.mark.integration


@pytest.fixture
def w(db_url, redis_url, engine):
    with world(db_url, redis_url, engine) as w:
        yield w


@contextmanager
def live_server(settings: Settings) -> Iterator[str]:
    """The app on a real uvicorn server (its own event loop, in a thread) on a free port of 127.0.0.1."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=30)


async def _open_streams(
    base: str, headers: dict[str, str], n: int, alert_id: int | None, pool: Any
) -> tuple[int, int, int]:
    """Open n event streams (half the live report feed, half one alert's progress when given), wait for each
    to send its first frame, then ask /healthz while all of them are open. Returns (streams open, healthz status,
    the most connections the app's pool had checked out over the 3 s after every stream was open)."""
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    timeout = httpx.Timeout(60.0)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=timeout) as client:
        opened = 0
        ready = asyncio.Event()
        release = asyncio.Event()

        async def one(i: int) -> None:
            nonlocal opened
            path = "/api/v1/reports/stream"
            if alert_id is not None and i % 2:
                path = f"/api/v1/alerts/{alert_id}/progress/stream"
            async with client.stream("GET", path, headers=headers) as r:
                assert r.status_code == 200, (path, r.status_code)
                async for line in r.aiter_lines():
                    if line.startswith(("event:", "retry:", ":")):
                        break
                opened += 1
                if opened == n:
                    ready.set()
                await release.wait()

        tasks = [asyncio.create_task(one(i)) for i in range(n)]
        try:
            await asyncio.wait_for(ready.wait(), timeout=120)
            held = 0
            for _ in range(60):  # a few ticks of both polling loops
                held = max(held, pool.checkedout())
                await asyncio.sleep(0.05)
            health = await client.get("/healthz", timeout=30)
            return opened, health.status_code, held
        finally:
            release.set()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


@pytest.mark.parametrize("dbs", ["postgresql"], indirect=True)
def test_two_hundred_event_streams_hold_no_database_session(w, db_url, record):
    from broadcast.alerts import service as alerts_service
    from broadcast.alerts.schemas import AlertCreate
    from broadcast.db import session_scope
    from broadcast.users.models import User
    from tests.factories import alert_payload

    with session_scope(w.engine) as s:
        author = s.get(User, w.users["operator"])
        approver = s.get(User, w.users["approver"])
        alert = alerts_service.create_alert(
            s, data=AlertCreate(**alert_payload("Exercise")), author=author, sender="s"
        )
        alerts_service.submit_alert(s, alert_id=alert.id, actor=author)
        alerts_service.approve_alert(s, alert_id=alert.id, approver=approver, production=False)
        alert_id = alert.id
    with live_server(w.settings) as base:
        opened, health, held = asyncio.run(
            _open_streams(base, w.headers("analyst"), 200, alert_id, get_engine(db_url).pool)
        )
    assert opened == 200
    assert health == 200
    # One polling loop per topic (two topics here), one short session each: never one per stream.
    assert held <= 3, held
    record("event streams", "200 open SSE streams (live reports + alert progress), then /healthz",
           "healthz answers, pool ≤ 3 connections", ok=True)


FORMULAS = ["=HYPERLINK(\"http://x.example\",\"klik\")", "+1+1", "-2+3", "@SUM(A1:A2)", "\tTAB=1", "\rCR=1"]


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_csv_exports_neutralise_formulas(w, record):
    import csv
    import io

    staff = w.headers("analyst")
    stored = FORMULAS[:4]  # intake strips leading white space; a tab or CR start is covered by the unit test below
    for n, text in enumerate(stored):
        r = w.client.post("/api/v1/reports", json={"text": text, "external_id": f"f{n}"}, headers=staff)
        assert r.status_code == 202, r.text
    exported = w.client.get("/api/v1/reports/export.csv", headers=staff)
    assert exported.status_code == 200
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    texts = {row["text"] for row in rows}
    for text in stored:
        ok = ("'" + text) in texts and text not in texts
        record("csv export", f"report text starting with {text[:1]!r}", "neutralised" if ok else "formula", ok=ok)
        assert ok, (text, texts)
    lats = [row["lat"] for row in rows]
    assert all(not v.startswith("'") for v in lats)  # numbers stay numbers


def test_csv_cells_keep_numbers_and_neutralise_text():
    from broadcast.csvexport import safe_cell, to_csv

    assert safe_cell(-6.2) == -6.2 and safe_cell(None) == "" and safe_cell("Banjir") == "Banjir"
    assert [safe_cell(t)[0] for t in FORMULAS] == ["'"] * len(FORMULAS)
    assert to_csv(["a"], [["=1"], [-1]]).splitlines() == ["a", "'=1", "-1"]

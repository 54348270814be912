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
    ok = opened == 200 and health == 200 and held <= 3
    record("event streams", "200 open SSE streams (live reports + alert progress), then /healthz",
           "healthz answers, pool ≤ 3 connections" if ok else f"{opened} open, healthz {health}, pool {held}", ok=ok)
    assert opened == 200
    assert health == 200
    # One polling loop per topic (two topics here), one short session each: never one per stream.
    assert held <= 3, held


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


# --- outbound requests -------------------------------------------------------------------------------------------

FORBIDDEN_URLS = [
    "http://127.0.0.1:{port}/hook",
    "http://localhost:{port}/hook",
    "http://0x7f000001:{port}/hook",
    "http://2130706433:{port}/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]:{port}/hook",
    "http://[::ffff:127.0.0.1]:{port}/hook",
    "http://[::ffff:169.254.169.254]/",
    "http://10.0.0.1/hook",
    "http://192.168.1.1/hook",
    "http://0.0.0.0:{port}/hook",
    "http://224.0.0.1/hook",
    "http://100.64.0.1/hook",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_INFO",
    "http://admin:pw@partner.example/hook",
]


class _Sink:
    """A local HTTP server that records what reaches it and answers `status` (with `location` for a 3xx)."""

    def __init__(self, status: int = 204, location: str | None = None, body: bytes = b"") -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        sink = self
        self.hits: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                sink.hits.append(f"{self.command} {self.path}")
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sink():
    s = _Sink()
    yield s
    s.close()


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_registering_a_webhook_to_a_private_address_is_refused(w, sink, record):
    from broadcast.partners.models import PartnerWebhook

    admin = w.headers("admin")
    for template in FORBIDDEN_URLS:
        url = template.format(port=sink.port)
        r = w.client.post("/api/v1/partners/webhooks", json={"name": "x", "url": url}, headers=admin)
        ok = r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
        record("outbound requests", f"register partner webhook {template.split('/')[0]}//{url.split('/')[2]}",
               f"{r.status_code}", ok=ok)
        assert ok, (url, r.status_code, r.text)
    assert w.count(PartnerWebhook) == 0
    assert sink.hits == []


def test_a_webhook_post_reaches_only_allowed_addresses_and_follows_no_redirect(record):
    from broadcast.partners.service import http_post

    target = _Sink()
    bounce = _Sink(status=307, location=f"http://127.0.0.1:{target.port}/internal")
    try:
        url = f"http://127.0.0.1:{target.port}/hook"
        with pytest.raises(OSError, match="loopback"):
            http_post(url, b"{}", {"Content-Type": "application/json"}, allow=[])
        refused = target.hits == []
        record("outbound requests", "webhook POST to 127.0.0.1 (not allow-listed)", "refused before connecting",
               ok=refused)
        assert refused
        # An allowed partner that redirects to a forbidden address: the 307 is its answer, nothing follows it.
        status = http_post(f"http://localhost:{bounce.port}/hook", b"{}", {}, allow=["localhost"])
        ok = status == 307 and target.hits == [] and len(bounce.hits) == 1
        record("outbound requests", "allowed partner redirects the webhook to 127.0.0.1", f"{status}, not followed",
               ok=ok)
        assert ok
        assert http_post(url, b"{}", {}, allow=["127.0.0.1"]) == 204  # allow-listed test host
    finally:
        target.close()
        bounce.close()


def test_fetch_checks_every_redirect_hop(record):
    from broadcast.fetch import fetch_url

    secret = _Sink(status=200, body=b"internal secret")
    feed = _Sink(status=302, location=f"http://127.0.0.1:{secret.port}/secret")
    try:
        with pytest.raises(OSError, match="loopback"):
            fetch_url(f"http://localhost:{feed.port}/feed.xml", allow=["localhost"])
        ok = secret.hits == [] and len(feed.hits) == 1
        record("outbound requests", "BMKG/CAP fetch redirected to 127.0.0.1", "refused at the redirect", ok=ok)
        assert ok
        try:
            fetch_url("http://169.254.169.254/latest/meta-data/", allow=[])
        except OSError as exc:
            refusal: OSError | None = exc
        else:
            refusal = None
        ok = refusal is not None and "link-local" in str(refusal)
        record("outbound requests", "BMKG/CAP fetch of 169.254.169.254", "refused" if ok else f"NOT REFUSED: {refusal}",
               ok=ok)
        with pytest.raises(OSError, match="link-local"):
            fetch_url("http://169.254.169.254/latest/meta-data/", allow=[])
        assert fetch_url(f"http://127.0.0.1:{secret.port}/secret", allow=["127.0.0.1"]) == b"internal secret"
    finally:
        secret.close()
        feed.close()


@pytest.mark.parametrize(
    ("address", "forbidden"),
    [
        ("127.0.0.1", True), ("10.1.2.3", True), ("172.16.0.1", True), ("192.168.0.1", True), ("169.254.1.1", True),
        ("0.0.0.0", True), ("224.0.0.251", True), ("255.255.255.255", True), ("100.64.0.1", True),
        ("::1", True), ("::", True), ("fe80::1", True), ("fc00::1", True), ("ff02::1", True),
        ("::ffff:127.0.0.1", True), ("::ffff:10.0.0.1", True), ("2002:7f00:1::1", True), ("::127.0.0.1", True),
        ("8.8.8.8", False), ("2001:4860:4860::8888", False), ("::ffff:8.8.8.8", False),
    ],
)
def test_forbidden_addresses(address, forbidden):
    import ipaddress

    from broadcast.outbound import forbidden_reason

    assert (forbidden_reason(ipaddress.ip_address(address)) is not None) is forbidden


# --- uploads -------------------------------------------------------------------------------------------------------


def _shapefile_zip(points: int, parts: int = 1) -> bytes:
    """A zip with a .shp/.shx of one Polygon record of `points` points (all the same: it compresses ~1000:1)."""
    import io
    import struct
    import zipfile

    per = points // parts
    content = struct.pack("<i4d2i", 5, 120.0, -1.0, 121.0, 0.0, parts, points)
    content += b"".join(struct.pack("<i", i * per) for i in range(parts))
    content += struct.pack("<2d", 120.5, -0.5) * points
    record = struct.pack(">2i", 1, len(content) // 2) + content

    def header(length: int) -> bytes:
        return struct.pack(">7i", 9994, 0, 0, 0, 0, 0, length // 2) + struct.pack("<2i8d", 1000, 5, 120.0, -1.0,
                                                                                   121.0, 0.0, 0, 0, 0, 0)

    shp = header(100 + len(record)) + record
    shx = header(108) + struct.pack(">2i", 50, len(content) // 2)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("area.shp", shp)
        z.writestr("area.shx", shx)
    return out.getvalue()


def _upload(w, name: str, data: bytes):  # type: ignore[no-untyped-def]
    return w.client.post("/api/v1/areas/upload", files={"file": (name, data)}, headers=w.headers("operator"))


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_oversized_and_nested_uploads_are_refused_with_a_reason(w, record):
    import json

    from geo.areas import MAX_VERTICES

    huge = _shapefile_zip(3_000_000)  # a 48 MB .shp in a zip of a few dozen KB
    many = _shapefile_zip(MAX_VERTICES + 1_000)  # small enough a .shp to be read: counted record by record
    kml = (
        '<kml xmlns="http://www.opengis.net/kml/2.2"><Placemark><Polygon><outerBoundaryIs><LinearRing><coordinates>'
        + "120.5,-0.5 " * (MAX_VERTICES + 10)
        + "</coordinates></LinearRing></outerBoundaryIs></Polygon></Placemark></kml>"
    ).encode()
    square = [[[120.0, -1.0], [121.0, -1.0], [121.0, 0.0], [120.0, 0.0], [120.0, -1.0]]]
    wide = json.dumps({"type": "MultiPolygon", "coordinates": [square] * 1_500}).encode()
    deep = (b'{"type":"GeometryCollection","geometries":[' * 3_000 + json.dumps({"type": "Polygon",
            "coordinates": square}).encode() + b"]}" * 3_000)
    nested_lists = b'{"type": "Polygon", "coordinates": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    cases = [
        ("zip holding a 48 MB .shp (3M vertices)", "area.zip", huge, 413, "too-many-vertices"),
        (f"zip holding {MAX_VERTICES + 1000} vertices", "area.zip", many, 413, "too-many-vertices"),
        (f"KML of {MAX_VERTICES + 10} vertices", "area.kml", kml, 413, "too-many-vertices"),
        ("GeoJSON of 1,500 polygon parts", "area.geojson", wide, 413, "too-many-parts"),
        ("GeoJSON GeometryCollections nested 3,000 deep", "area.geojson", deep, 422, "too-deep"),
        ("GeoJSON coordinates nested 50,000 deep", "area.geojson", nested_lists, 422, "too-deep"),
    ]
    for attack, name, data, status, code in cases:
        assert len(data) < w.settings.max_body_bytes, (attack, len(data))
        r = _upload(w, name, data)
        kind = r.json().get("type", "") if r.status_code < 500 else ""
        ok = r.status_code == status and kind == f"/problems/{code}" and len(r.content) < 10_000
        record("uploads", attack, f"{r.status_code} {kind}", ok=ok)
        assert ok, (attack, r.status_code, r.text[:300])
    fine = _upload(w, "area.zip", _shapefile_zip(5))
    assert fine.status_code == 200 and fine.json()["format"] == "shapefile"

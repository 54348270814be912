"""The whole slice through the real `broadcast serve`: API, real Celery worker, outbox, public web."""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import DEMO_PASSWORDS, broadcast_exe, clean_env, demo_password, read_demo_password
from tests.factories import alert_payload

pytestmark = pytest.mark.e2e
PALU_DEMO_SUBSCRIBERS = 8


def login(base: str, username: str) -> dict[str, str]:
    r = httpx.post(f"{base}/api/v1/auth/login", json={"username": username, "password": demo_password(base)})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def wait_until_delivered(base: str, alert_id: int, headers: dict[str, str], timeout: float = 90) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = httpx.get(f"{base}/api/v1/alerts/{alert_id}/deliveries", headers=headers).json()
        if rows and all(r["total"] and r["by_state"]["sent"] == r["total"] for r in rows):
            return rows
        time.sleep(0.3)
    raise AssertionError(f"deliveries not done: {rows}")


def run_lifecycle(base: str, status: str) -> None:
    op, apv = login(base, "op.palu"), login(base, "apv.sulteng")
    r = httpx.post(f"{base}/api/v1/alerts", json=alert_payload(status), headers=op)
    assert r.status_code == 201, r.text
    alert = r.json()
    assert httpx.post(f"{base}/api/v1/alerts/{alert['id']}/submit", headers=op).status_code == 200
    refused = httpx.post(f"{base}/api/v1/alerts/{alert['id']}/approve", headers=op)
    assert refused.status_code == 403, refused.text
    page = f"{base}/peringatan/{alert['identifier']}"
    assert httpx.get(page).status_code == 404  # nothing public before approval
    approved = httpx.post(f"{base}/api/v1/alerts/{alert['id']}/approve", headers=apv)
    assert approved.status_code == 202, approved.text

    rows = wait_until_delivered(base, alert["id"], apv)
    by_channel = {r["channel"]: r for r in rows}
    assert by_channel["sms"]["total"] == PALU_DEMO_SUBSCRIBERS
    assert by_channel["sms"]["mode"] == "outbox" and by_channel["social"]["mode"] == "outbox"

    outbox = httpx.get(f"{base}/api/v1/alerts/{alert['id']}/outbox", headers=apv).json()
    sms = [m for m in outbox if m["channel"] == "sms"]
    assert len(sms) == PALU_DEMO_SUBSCRIBERS
    assert len({m["recipient"] for m in sms}) == PALU_DEMO_SUBSCRIBERS  # nobody twice
    short = f"{base}/p/{alert['id']}"
    assert all(m["text"].endswith(short) for m in sms)  # SMS carry the short link
    assert httpx.get(short, follow_redirects=True).url == httpx.URL(page)
    marks = {"Exercise": ("[LATIHAN]", "[EXERCISE]"), "Test": ("[TEST/UJI COBA]", "[TEST]")}
    if status in marks:
        assert all(m["text"].startswith(marks[status]) for m in outbox)
    else:
        assert not any(m["text"].startswith("[") for m in outbox)

    html = httpx.get(page)
    assert html.status_code == 200 and "Banjir di Kota Palu" in html.text
    assert ("BUKAN KEJADIAN NYATA" in html.text) is (status != "Actual")
    main_feed = httpx.get(f"{base}/feed/atom.xml")
    exercise_feed = httpx.get(f"{base}/feed/latihan.xml")
    assert main_feed.headers["content-type"].startswith("application/atom+xml")
    in_main, in_exercise = page in main_feed.text, page in exercise_feed.text
    assert (in_main, in_exercise) == ((True, False) if status == "Actual" else (False, True))
    trail = httpx.get(f"{base}/api/v1/alerts/{alert['id']}/audit", headers=apv).json()
    assert [e["action"] for e in trail] == ["alert.create", "alert.submit", "alert.approve", "alert.publish"]
    cap_xml = httpx.get(f"{base}/cap/{alert['identifier']}.xml")
    assert cap_xml.status_code == 200 and cap_xml.headers["content-type"] == "application/cap+xml"
    assert f"<status>{status}</status>" in cap_xml.text
    return alert


def cancel_through_approval(base: str, alert: dict) -> None:
    """A Cancel goes through the same two-person approval and reaches the same people."""
    op, apv = login(base, "op.palu"), login(base, "apv.sulteng")
    cancel = httpx.post(f"{base}/api/v1/alerts/{alert['id']}/cancel", json={"reason": "Air sudah surut"},
                        headers=op).json()
    assert cancel["msg_type"] == "Cancel" and alert["identifier"] in cancel["references"]
    httpx.post(f"{base}/api/v1/alerts/{cancel['id']}/submit", headers=op)
    assert httpx.post(f"{base}/api/v1/alerts/{cancel['id']}/approve", headers=apv).status_code == 202
    wait_until_delivered(base, cancel["id"], apv)
    original = httpx.get(f"{base}/api/v1/alerts/{alert['id']}", headers=apv).json()
    assert original["state"] == "cancelled"
    page = httpx.get(f"{base}/peringatan/{alert['identifier']}").text
    assert "DIBATALKAN" in page


def test_embedded_default_end_to_end(serve_factory):
    """SQLite and the bundled Redis, nothing configured: what a new user gets."""
    served = serve_factory()
    assert "op.palu" in served.output()  # demo logins printed on an empty database
    exercise = run_lifecycle(served.base, "Exercise")
    run_lifecycle(served.base, "Test")
    cancel_through_approval(served.base, exercise)
    # A development deployment cannot publish an Actual alert at all.
    op, apv = login(served.base, "op.palu"), login(served.base, "apv.sulteng")
    actual = httpx.post(f"{served.base}/api/v1/alerts", json=alert_payload("Actual"), headers=op).json()
    httpx.post(f"{served.base}/api/v1/alerts/{actual['id']}/submit", headers=op)
    refused = httpx.post(f"{served.base}/api/v1/alerts/{actual['id']}/approve", headers=apv)
    assert refused.status_code == 403 and refused.json()["type"] == "/problems/actual-not-allowed-here"

    # A second serve on the same port says so clearly and exits.
    second = subprocess.run([broadcast_exe(), "serve", "--port", served.base.rsplit(":", 1)[1]],
                            env=clean_env(), capture_output=True, text=True, timeout=60,
                            cwd=served.log.parent)
    assert second.returncode == 1
    assert "already in use" in second.stdout + second.stderr


def test_postgresql_and_redis_end_to_end(serve_factory, pg_dbs, redis_url):
    """The production shape of the data path: PostgreSQL and a real Redis broker (the test's own database)."""
    broker = redis_url
    db_url = pg_dbs.empty()
    # Production never loads demo data itself: seed the same users and subscribers beforehand.
    seed_dir = Path(tempfile.mkdtemp(prefix="broadcast-seed-"))
    for args in (["db", "upgrade"], ["demo", "load"]):
        seeded = subprocess.run([broadcast_exe(), *args], env=clean_env(BROADCAST_DATABASE_URL=db_url,
                                BROADCAST_DATA_DIR=str(seed_dir)), cwd=tempfile.gettempdir(),
                                capture_output=True, text=True, timeout=120)
        assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    password = read_demo_password(seed_dir)
    assert password and password in seeded.stdout  # generated, and printed by `demo load`
    served = serve_factory(BROADCAST_DATABASE_URL=db_url, BROADCAST_BROKER_URL=broker,
                           BROADCAST_ENVIRONMENT="production", BROADCAST_SECRET_KEY="e2e-production-secret-key")
    DEMO_PASSWORDS[served.base] = password
    assert "redis+socket" not in served.output()
    run_lifecycle(served.base, "Actual")

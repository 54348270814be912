"""An approval while the broker is down (issue 22), with real processes: the API under uvicorn, `broadcast worker`
and `broadcast beat`, PostgreSQL, a Redis of the test's own (stopped before the approval, restarted empty) and the
fake Twilio. The fan-out waits in the database (a transactional outbox), the approver, the console and /readyz
are told, and it starts by itself once the broker answers again; the beat sweep is set to an hour so it is not
what rescues it.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections import Counter

import httpx
import pytest
import sqlalchemy as sa

from broadcast.alerts import service as alerts
from broadcast.alerts.schemas import AlertCreate
from broadcast.db import session_scope
from broadcast.users.models import User
from broadcast.users.security import issue_token
from tests.conftest import require_service
from tests.factories import alert_payload
from tests.integration.test_fanout_faults import ROOT, Rig, _free_port, _private_redis, _stop, pg_url  # noqa: F401

pytestmark = pytest.mark.integration
RECIPIENTS = 8


def _api(rig: Rig, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "broadcast.api.asgi:app", "--port", str(port), "--log-level", "warning"],
        env=rig.env() | {"BROADCAST_PUBLIC_BASE_URL": "https://peringatan.example.id"},
        cwd=ROOT,
        stdout=(rig.tmp / "api.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    rig.procs.append(proc)
    base = f"http://127.0.0.1:{port}"
    rig.wait_for("the API", lambda: _answers(base + "/healthz"), timeout=60)
    return proc


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_approval_while_the_broker_is_down_fans_out_when_it_returns(tmp_path, pg_url, record) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    require_service("redis-server (a private Redis this test stops)", present=shutil.which("redis-server") is not None)
    port = _free_port()
    server = _private_redis(tmp_path, port)
    rig = Rig(tmp_path, pg_url, f"redis://127.0.0.1:{port}/0")
    rig.extra_env = {"BROADCAST_DISPATCH_SWEEP_S": "3600", "BROADCAST_DISPATCH_STALE_S": "3600"}
    try:
        rig.seed(RECIPIENTS)
        rig.start("worker")
        rig.start("beat")
        api_port = _free_port()
        _api(rig, api_port)
        base = f"http://127.0.0.1:{api_port}"
        with session_scope(rig.engine) as s:
            payload = alert_payload("Actual")
            payload["channels"] = ["sms"]
            operator = s.merge(rig.team["operator"])
            alert = alerts.create_alert(s, data=AlertCreate(**payload), author=operator, sender="bpbd@palu")
            alerts.submit_alert(s, alert_id=alert.id, actor=operator)
            alert_id = alert.id
            approver = s.get(User, rig.team["approver"].id)
            token = issue_token(
                "fault-tests-production-secret", user_id=approver.id, token_version=approver.token_version
            )
        headers = {"Authorization": f"Bearer {token}"}

        _stop(server, signal.SIGKILL)  # the broker is down before the approval
        approved = httpx.post(f"{base}/api/v1/alerts/{alert_id}/approve", headers=headers, timeout=30)
        assert approved.status_code == 202, approved.text
        fanout = approved.json().get("fanout")
        told = fanout is not None and fanout["queued"] is False and "broker" in fanout["detail"]
        ready = httpx.get(f"{base}/readyz", timeout=30)
        checks = ready.json()["checks"]
        waiting = checks.get("fanout", {})
        page = httpx.get(f"{base}/konsol/peringatan/{alert_id}/progres", headers=headers, timeout=30)
        shown = 'id="fanout-waiting"' in page.text
        record("fan-out faults", "broker down at approval: the approver, /readyz and the console are told",
               f"answer queued={fanout and fanout['queued']}, readyz {ready.status_code} "
               f"waiting={waiting.get('waiting')}, console banner={shown}", ok=told and shown and
               ready.status_code == 503 and alert_id in waiting.get("alert_ids", []))
        assert told, approved.json()
        assert ready.status_code == 503 and checks["broker"]["ok"] is False
        assert waiting["ok"] is False and alert_id in waiting["alert_ids"], checks
        assert shown, page.text[:2000]
        time.sleep(3)
        assert rig.posts() == []  # nothing can move without the broker

        server = _private_redis(tmp_path, port)  # back, and empty: nothing was queued there
        returned = time.monotonic()
        rig.wait_for("the first message after the broker returned", lambda: len(rig.posts()) > 0, timeout=120)
        started_s = time.monotonic() - returned
        rig.wait_settled(alert_id, RECIPIENTS)
        posts = Counter(to for _, to in rig.posts())
        print(f"\nfan-out started {started_s:.1f} s after the broker returned")
        ok = rig.states(alert_id) == Counter({"sent": RECIPIENTS}) and len(posts) == RECIPIENTS
        ok = ok and max(posts.values()) == 1
        record("fan-out faults", "broker down at approval, restarted empty (beat sweep off)",
               f"{len(posts)} of {RECIPIENTS} reached, first message {started_s:.0f} s after the broker returned",
               ok=ok)
        assert ok, (rig.states(alert_id), posts)
        after = httpx.get(f"{base}/readyz", timeout=30).json()["checks"]["fanout"]
        assert after == {"ok": True, "waiting": 0}
        with rig.engine.connect() as c:
            assert c.scalar(sa.text("SELECT count(*) FROM pending_enqueues")) == 0
    finally:
        rig.close()
        _stop(server)

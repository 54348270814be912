"""Issue 24: citizen-driven work must never hold the processes that send warnings.

Real processes (`broadcast worker` for warnings, `broadcast worker --queues intake` for reports), PostgreSQL,
Redis and the fake Twilio through the real SDK (the `Rig` of test_fanout_faults). A flood of worst-case report
texts is waiting for enrichment, with enrichment runs already started (as many as the warning pool has processes),
when an Extreme alert is approved: the first provider request must come while the flood is still being worked
through, i.e. the warning did not wait for it. The assertion is on order and progress, never on wall time.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from broadcast.alerts import service as alerts
from broadcast.alerts.schemas import AlertCreate
from broadcast.db import session_scope
from broadcast.reports import intake
from broadcast.reports.models import Report
from broadcast.settings import Settings
from broadcast.worker import create_celery
from tests.factories import alert_payload
from tests.integration.test_fanout_faults import WORKERS, Rig

pytestmark = pytest.mark.integration

FLOOD = 2000
# The review's worst case: a place name with many gazetteer candidates, repeated up to an SMS's length.
WORST_TEXT = "banjir " + "sidomulyo " * 160


@pytest.fixture
def rig(tmp_path, pg_dbs, redis_url) -> Iterator[Rig]:  # type: ignore[no-untyped-def]
    r = Rig(tmp_path, pg_dbs.fresh(), redis_url)
    yield r
    r.close()


def _start_intake_worker(rig: Rig) -> None:
    log = (rig.tmp / "intake-worker.log").open("wb")
    rig.procs.append(
        subprocess.Popen(
            [sys.executable, "-m", "broadcast.cli", "worker", "--queues", "intake", "--concurrency", "1",
             "--loglevel", "WARNING"],
            env=rig.env(),
            cwd=rig.tmp,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    )


def _unfinished(rig: Rig) -> int:
    with rig.engine.connect() as c:
        return int(c.scalar(sa.select(sa.func.count()).select_from(Report).where(Report.processing != "done")) or 0)


def _working(rig: Rig) -> int:
    with rig.engine.connect() as c:
        return int(c.scalar(sa.select(sa.func.count()).select_from(Report).where(Report.processing == "working")) or 0)


def test_a_flood_of_worst_case_reports_does_not_delay_an_extreme_warning(rig: Rig, record) -> None:
    rig.seed(50)
    with session_scope(rig.engine) as s:
        rows = [
            intake.intake_values(source="api", external_id=f"flood-{n}", raw={"text": WORST_TEXT}, text=WORST_TEXT,
                                 author=f"flooder-{n % 7}")
            for n in range(FLOOD)
        ]
        intake.store_many(s, rows)
    rig.start("worker")  # the warning pool: critical,broadcast, WORKERS processes
    rig.start("beat")
    _start_intake_worker(rig)
    # The app's own routing (broadcast.worker), as the API's kick and the beat sweep use it.
    app = create_celery(Settings(environment="test", broker_url=rig.broker, database_url=rig.db_url))
    try:
        for _ in range(WORKERS + 1):  # one more enrichment run than the warning pool has processes
            app.send_task("reports.enrich_pending")
        rig.wait_for("the flood's enrichment to start", lambda: _working(rig) > 0)

        with session_scope(rig.engine) as s:
            payload = alert_payload("Actual")
            payload["channels"] = ["sms"]
            for info in payload["infos"]:
                info.update(severity="Extreme", urgency="Immediate", event="Tsunami")
            operator = s.merge(rig.team["operator"])
            alert = alerts.create_alert(s, data=AlertCreate(**payload), author=operator, sender="bpbd@palu")
            alerts.submit_alert(s, alert_id=alert.id, actor=operator)
            alerts.approve_alert(s, alert_id=alert.id, approver=s.merge(rig.team["approver"]), production=True)
            alert_id = alert.id
        app.send_task("dispatch.fanout_alert", args=[alert_id], queue="critical")
        try:
            rig.wait_for("the warning's first provider request", lambda: len(rig.posts()) > 0, timeout=180)
        except AssertionError:  # still nothing sent: the warning is stuck behind the flood
            left = 0
        else:
            left = _unfinished(rig)
    finally:
        app.close()
    ok = left > 0
    record(
        "queue isolation",
        f"Extreme alert approved during a flood of {FLOOD:,} worst-case reports being enriched",
        f"first provider request with {left:,} reports still unenriched" if ok else "WAITED FOR THE FLOOD",
        ok=ok,
    )
    assert ok, "the warning's first provider request came only after the whole flood was enriched"
    rig.wait_settled(alert_id, 50)


def test_citizen_driven_tasks_route_to_the_intake_queue_with_time_limits(record) -> None:
    import broadcast.worker as worker

    app = worker.celery
    app.loader.import_default_modules()
    citizen = ("reports.enrich_pending", "reports.sweep", "reports.poll_x", "alerts.poll_bmkg", "trust.send_replies",
              "trust.sweep_replies", "subscribers.send_confirmations", "subscribers.sweep_confirmations")
    routed = {name: app.amqp.router.route({}, name)["queue"].name for name in (*citizen, "dispatch.send_batch")}
    limited = {name: (app.tasks[name].soft_time_limit, app.tasks[name].time_limit) for name in citizen}
    ok = all(routed[n] == "intake" for n in citizen) and routed["dispatch.send_batch"] == "broadcast"
    ok = ok and all(soft and hard and soft < hard for soft, hard in limited.values())
    record("queue isolation", "citizen-driven tasks (reports, polls, replies) on the warning pool, unbounded",
           "own queue, time-limited" if ok else "SHARED OR UNBOUNDED", ok=ok)
    assert ok, (routed, limited)


def test_serve_and_compose_start_the_intake_pool_as_its_own_process(tmp_path) -> None:
    import yaml

    from broadcast.serve import Supervisor

    root = Path(__file__).resolve().parents[2]
    services = yaml.safe_load((root / "docker-compose.yml").read_text())["services"]
    assert "--queues" in services["intake-worker"]["command"] and "intake" in services["intake-worker"]["command"]
    assert "intake" not in " ".join(services["worker"]["command"])
    spawned: list[tuple[str, list[str]]] = []
    sup = Supervisor(Settings(environment="test", data_dir=tmp_path, broker_url="redis://127.0.0.1:1/0"), "127.0.0.1", 0)
    sup._spawn = lambda name, cmd: spawned.append((name, cmd))  # type: ignore[method-assign]
    sup.start()
    names = {name: cmd for name, cmd in spawned}
    assert "intake-worker" in names and names["intake-worker"][-4:] == ["--queues", "intake", "--concurrency", "1"]
    assert "intake" not in " ".join(names["worker"])

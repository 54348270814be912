"""The real `broadcast` command in a subprocess: cap validate/import and audit verify."""

import re
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from broadcast.db import make_engine
from tests.e2e.conftest import broadcast_exe, clean_env

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def run(*args: str, db_url: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = clean_env(**({"BROADCAST_DATABASE_URL": db_url} if db_url else {}))
    return subprocess.run([broadcast_exe(), *args], env=env, capture_output=True, text=True, timeout=120, cwd=cwd)


def test_cap_validate_exit_codes_and_one_reason_per_bad_file(tmp_path):
    valid = sorted(str(p) for p in (FIXTURES / "cap/oasis_examples").iterdir())
    ok = run("cap", "validate", *valid, cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.count("VALID") == len(valid)
    invalid = [str(FIXTURES / "cap/invalid" / n) for n in ("gcl_invalid.cap", "gcl_noaa_errors.cap",
                                                           "gcl_canada_errors.cap")]
    bad = run("cap", "validate", valid[0], *invalid, cwd=tmp_path)
    assert bad.returncode == 1
    lines = [line for line in bad.stdout.splitlines() if line.startswith("INVALID")]
    assert len(lines) == 3 and all(": " in line for line in lines)


def test_cap_import_prints_new_draft_ids(sqlite_dbs, tmp_path):
    url = sqlite_dbs.fresh()
    res = run("cap", "import", str(FIXTURES / "cap/real_world/us_wcatwc_tsunami_warning.cap"),
              str(FIXTURES / "cap/invalid/gcl_invalid.cap"), "--no-fetch", db_url=url, cwd=tmp_path)
    assert res.returncode == 1  # one file had nothing importable
    assert re.search(r"draft alert \d+", res.stdout)
    assert "skipped" in res.stdout
    engine = make_engine(url)
    with engine.connect() as c:
        assert c.scalar(sa.text("SELECT count(*) FROM alerts WHERE state = 'draft'")) == 1
    engine.dispose()


def test_audit_verify_detects_a_row_edited_in_the_database(dbs, tmp_path):
    url = dbs.fresh()
    assert run("demo", "load", db_url=url, cwd=tmp_path).returncode == 0
    intact = run("audit", "verify", db_url=url, cwd=tmp_path)
    assert intact.returncode == 0 and "intact" in intact.stdout
    engine = make_engine(url)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change"))
        else:
            conn.execute(sa.text("DROP TRIGGER audit_log_no_update"))
        victim = conn.scalar(sa.text("SELECT id FROM audit_log ORDER BY id LIMIT 1 OFFSET 3"))
        conn.execute(sa.text("UPDATE audit_log SET action = 'user.delete' WHERE id = :i"), {"i": victim})
    engine.dispose()
    broken = run("audit", "verify", db_url=url, cwd=tmp_path)
    assert broken.returncode == 1
    assert f"broken at entry {victim}" in broken.stdout


@pytest.mark.parametrize(
    ("tamper", "position"),
    [("deleted", 3), ("reordered", 3), ("inserted", 4), ("truncated", 4)],
)
def test_audit_verify_names_the_first_broken_position(sqlite_dbs, tmp_path, tamper, position):
    from tests.integration import test_audit as t

    url = sqlite_dbs.fresh()
    engine = make_engine(url)
    from broadcast.db import session_scope

    with session_scope(engine) as s:
        t._write_some(s, n=5)
    assert run("audit", "verify", db_url=url, cwd=tmp_path).returncode == 0
    how = {"deleted": t._delete_third, "reordered": t._swap_third_and_fourth, "inserted": t._insert_after_second,
           "truncated": t._truncate_last_two}[tamper]
    with engine.begin() as conn:
        t._bypass_triggers(conn)
        how(conn)
    engine.dispose()
    broken = run("audit", "verify", db_url=url, cwd=tmp_path)
    assert broken.returncode == 1
    assert f"position {position})" in broken.stdout or f"position {position}:" in broken.stdout, broken.stdout


def test_alerts_progress_shows_each_channel_settled(sqlite_dbs, tmp_path):
    from broadcast.alerts import service as alerts
    from broadcast.alerts.schemas import AlertCreate
    from broadcast.db import session_scope
    from broadcast.dispatch.claims import claim
    from broadcast.dispatch.outcomes import record_results
    from broadcast.dispatch.pacing import send_claimed
    from broadcast.dispatch.plan import plan_alert
    from channels.registry import build_channels
    from tests.factories import alert_payload, make_subscribers, make_team

    url = sqlite_dbs.fresh()
    engine = make_engine(url)
    with session_scope(engine) as s:
        team = make_team(s)
        make_subscribers(s)
        alert = alerts.create_alert(s, data=AlertCreate(**alert_payload("Exercise")), author=team["operator"],
                                    sender="s")
        alerts.submit_alert(s, alert_id=alert.id, actor=team["operator"])
        alerts.approve_alert(s, alert_id=alert.id, approver=team["approver"], production=False)
        alert_id = alert.id
    with session_scope(engine) as s:
        planned = plan_alert(s, alert_id=alert_id)
    channels = build_channels(["sms", "social", "web"], modes={}, public_base_url="http://x")
    for ids in planned.values():
        with session_scope(engine) as s:
            batch = claim(s, delivery_ids=ids, lease_s=60, public_base_url="http://x")
        with session_scope(engine) as s:
            record_results(s, sent=send_claimed(batch, channels=channels))
    engine.dispose()
    res = run("alerts", "progress", str(alert_id), "--no-watch", db_url=url, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "sms" in res.stdout and "4/4" in res.stdout and "selesai" in res.stdout
    assert run("alerts", "progress", "999", db_url=url, cwd=tmp_path).returncode == 2


def test_replay_petabencana_feeds_the_intake_once(sqlite_dbs, tmp_path):
    url = sqlite_dbs.fresh()
    first = run("demo", "replay-petabencana", "--speed", "0", "--limit", "25", db_url=url, cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "PetaBencana.id" in first.stdout and "25 laporan baru" in first.stdout
    again = run("demo", "replay-petabencana", "--speed", "0", "--limit", "25", db_url=url, cwd=tmp_path)
    assert "0 laporan baru" in again.stdout
    with make_engine(url).connect() as c:
        rows = c.execute(sa.text("SELECT source, hazard, processing, lat FROM reports")).all()
    assert len(rows) == 25 and all(r == ("api", "banjir", "pending", r[3]) and r[3] < 0 for r in rows)

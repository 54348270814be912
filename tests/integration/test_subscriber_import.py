"""CSV subscriber import: the service on both databases, and the real command's exit codes and output."""

import subprocess

import pytest
import sqlalchemy as sa

from broadcast.audit.models import AuditEntry
from broadcast.db import make_engine
from broadcast.subscribers import importing
from broadcast.subscribers.models import Subscriber
from broadcast.subscribers.service import add_subscriber, stop_by_staff
from tests.e2e.conftest import broadcast_exe, clean_env

pytestmark = pytest.mark.integration

GOOD = """phone,language,admin_code,lat,lon,channels,x_handle
081200000001,id,72.71.01.1004,,,sms,
+6281200000002,en,,-0.90,119.87,sms;social,@warga_palu
6281200000003,,33.15,,,,
081200000004,id,,-7.09,110.92,,
"""
BAD = """phone,language,admin_code,lat,lon,channels,x_handle
081200000001,id,72.71.01.1004,,,sms,
12345,id,72.71,,,sms,
081200000003,fr,72.71,,,sms,
081200000004,id,,,,sms,
081200000005,id,99.99,,,sms,
081200000006,id,,48.85,2.35,sms,
081200000007,id,72.71,,,pigeon,
081200000008,id,72.71,,,sms,,extra
081200000009,en,72.71.02,,,sms,
"""


@pytest.fixture
def actor(session):
    from broadcast.users.models import Role
    from tests.factories import make_user

    user = make_user(session, "admin.import", Role.ADMIN, None)
    session.flush()
    return user.id


def count(session):
    return session.scalar(sa.select(sa.func.count()).select_from(Subscriber))


def test_good_file_imports_every_row_and_locates_points(session, actor):
    report = importing.import_rows(session, importing.read_csv(GOOD), actor_id=actor)
    session.commit()
    assert report.applied and report.inserted == 4 and report.errors == []
    rows = {s.phone: s for s in session.scalars(sa.select(Subscriber))}
    assert rows["+6281200000002"].admin_code == "72.71.01.1010"
    assert rows["+6281200000002"].channels == ["sms", "social"] and rows["+6281200000002"].x_handle == "warga_palu"
    assert rows["+6281200000003"].language == "id" and rows["+6281200000003"].channels == ["sms"]
    assert rows["+6281200000004"].admin_code.startswith("33.15.")
    entry = session.scalars(sa.select(AuditEntry).where(AuditEntry.action == "subscriber.import")).one()
    assert entry.after["inserted"] == 4


def test_bad_rows_are_reported_by_line_and_nothing_is_imported(session, actor):
    report = importing.import_rows(session, importing.read_csv(BAD), actor_id=actor)
    session.commit()
    assert not report.applied and count(session) == 0
    lines = {e.line: e.reason for e in report.errors}
    assert sorted(lines) == [3, 4, 5, 6, 7, 8, 9]
    assert "phone" in lines[3] and "language" in lines[4] and "point" in lines[5] and "unknown area" in lines[6]
    assert "outside Indonesia" in lines[7] and "channel" in lines[8] and "columns" in lines[9]


def test_skip_invalid_imports_the_good_rows_and_still_lists_the_bad(session, actor):
    report = importing.import_rows(session, importing.read_csv(BAD), skip_invalid=True, actor_id=actor)
    session.commit()
    assert report.applied and report.inserted == 2 and len(report.errors) == 7
    assert {s.phone for s in session.scalars(sa.select(Subscriber))} == {"+6281200000001", "+6281200000009"}


def test_duplicates_update_and_a_stopped_subscriber_stays_stopped(session, actor):
    kept = add_subscriber(session, phone="081200000001", admin_code="72.71")
    stopped = add_subscriber(session, phone="081200000003", admin_code="72.71")
    stop_by_staff(session, subscriber_id=stopped.id, actor=None)
    session.commit()
    text = GOOD + "081200000004,en,34.04,,,,\n"  # the same phone as line 5: the later row wins
    report = importing.import_rows(session, importing.read_csv(text), actor_id=actor)
    session.commit()
    assert report.applied and report.updated == 2 and report.inserted == 2 and report.stopped_kept == 1
    assert report.repeated == [(6, 5)]
    session.refresh(kept)
    session.refresh(stopped)
    assert kept.admin_code == "72.71.01.1004" and stopped.admin_code == "33.15" and not stopped.active
    last = session.scalar(sa.select(Subscriber).where(Subscriber.phone == "+6281200000004"))
    assert last.admin_code == "34.04" and last.language == "en"


def test_dry_run_writes_nothing(session):
    report = importing.import_rows(session, importing.read_csv(GOOD), dry_run=True)
    session.commit()
    assert not report.applied and report.inserted == 4 and count(session) == 0


def test_bad_header_is_refused():
    with pytest.raises(importing.InvalidCsv):
        list(importing.read_csv("telepon,kode\n0812,72\n"))


def run(*args, db_url, cwd):
    env = clean_env(BROADCAST_DATABASE_URL=db_url)
    return subprocess.run([broadcast_exe(), *args], env=env, capture_output=True, text=True, timeout=120, cwd=cwd)


def test_command_exit_codes_and_report(sqlite_dbs, tmp_path):
    url = sqlite_dbs.fresh()
    _named_user(url)
    bad, good = tmp_path / "bad.csv", tmp_path / "good.csv"
    bad.write_text(BAD)
    good.write_text(GOOD)
    refused = run("subscribers", "import", str(bad), "--actor", "admin.import", db_url=url, cwd=tmp_path)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "line 3:" in refused.stdout and "line 9:" in refused.stdout and "nothing imported" in refused.stdout
    dry = run("subscribers", "import", str(good), "--dry-run", db_url=url, cwd=tmp_path)
    assert dry.returncode == 0 and "dry run" in dry.stdout
    skipped = run("subscribers", "import", str(bad), "--skip-invalid", "--actor", "admin.import", db_url=url,
                  cwd=tmp_path)
    assert skipped.returncode == 0 and "line 3:" in skipped.stdout and "imported: 2 new" in skipped.stdout
    again = run("subscribers", "import", str(good), "--actor", "admin.import", db_url=url, cwd=tmp_path)
    assert again.returncode == 0 and "rows/s" in again.stdout
    assert "updated (phone already registered) 1" in again.stdout
    engine = make_engine(url)
    with engine.connect() as c:
        assert c.scalar(sa.text("SELECT count(*) FROM subscribers")) == 5
    engine.dispose()


def _named_user(url):
    from broadcast.db import session_scope
    from broadcast.users.models import Role
    from tests.factories import make_user

    engine = make_engine(url)
    with session_scope(engine) as s:
        make_user(s, "admin.import", Role.ADMIN, None)
    engine.dispose()

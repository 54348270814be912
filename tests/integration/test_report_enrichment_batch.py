"""Batch enrichment (issue 20) on SQLite and PostgreSQL: a batch gives exactly the rows that enriching its reports
one by one gives; one poisonous report fails alone with its reason; a batch is enriched once even when it is run
again or its lease ran out and another run claimed it; a time limit fails the report at hand and gives the rest
back."""

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from broadcast.alerts import service as alerts
from broadcast.alerts.schemas import AlertCreate
from broadcast.db import make_engine, session_scope, utcnow
from broadcast.reports import enrichment, intake, petabencana
from broadcast.reports.models import Incident, Report
from broadcast.users.models import Role
from channels.base import InboundEvent
from geo import geoparse
from tests.factories import alert_payload, make_user

pytestmark = pytest.mark.integration
KEY = b"k" * 32
PALU = {"bpbdpalu": "72.71"}


def _seed(engine: sa.Engine, n: int = 60, *, alert: bool = False) -> None:
    """PetaBencana reports over three days (a third without coordinates, repeated texts from the same authors),
    Palu reports under a published alert, a sender's registered area, an X mention of a regional account and an
    SMS command: every branch of enrichment."""
    items = petabencana.load_reports()
    with session_scope(engine) as s:
        if alert:
            operator = make_user(s, "op.palu", Role.OPERATOR, "72.71")
            draft = alerts.create_alert(s, data=AlertCreate(**alert_payload("Exercise")), author=operator,
                                        sender="bpbd@palu")
            alerts.submit_alert(s, alert_id=draft.id, actor=operator)
            approver = make_user(s, "apv.sulteng", Role.APPROVER, "72")
            alerts.approve_alert(s, alert_id=draft.id, approver=approver, production=False)
            alerts.mark_published(s, alert=alerts.get_alert(s, alert_id=draft.id))
        rows = []
        for i in range(n):
            item = items[(i - 5 if i % 10 == 9 else i) * 7 % len(items)]  # every tenth repeats an earlier text
            located = i % 3 != 0
            rows.append(intake.intake_values(
                source="api", external_id=f"pb-{i}", raw={"i": i}, text=item.text or "banjir",
                author=f"pb-{(i - 5 if i % 10 == 9 else i) % 40}", lat=item.lat if located else None,
                lon=item.lon if located else None, hazard="banjir" if i % 2 else None, received_at=item.created_at,
                depth_cm=item.depth_cm))
        at = items[0].created_at
        for k, text in enumerate(["banjir setinggi lutut di Kelurahan Talise", "banjir selutut di kel talise",
                                  "Genangan di Kel. Birobuli Utara, Kec. Palu Selatan, Jl. Soekarno Hatta",
                                  "air naik, tolong"]):
            rows.append(intake.intake_values(source="api", external_id=f"palu-{k}", raw={}, text=text,
                                             author="palu-1", received_at=at + timedelta(minutes=k),
                                             admin_code="72.71.08" if k == 3 else None))
        rows.append(intake.intake_values(source="sms", external_id="cmd-1", raw={}, text="DAFTAR Talise",
                                         author="cmd", received_at=at))
        intake.store_many(s, rows)
        s.execute(sa.update(Report).where(Report.external_id == "cmd-1").values(command="register"))
        event = InboundEvent(source="x", external_id="77", sender="42", text="@BPBDPalu air naik sepinggang di Talise",
                             raw={"tweet": {"id": "77", "author_id": "42", "created_at": "2017-02-20T10:00:00Z"}})
        intake.store_x_post(s, event=event, account="BPBDPalu", author_key=KEY)


def _enrich(engine: sa.Engine, *, batch: int, batching: bool) -> list[enrichment.BatchResult]:
    results = []
    while True:
        with session_scope(engine) as s:
            claim = enrichment.claim_batch(s, limit=batch)
        if not claim.ids:
            return results
        run = enrichment.enrich_claimed if batching else enrichment.enrich_one_by_one
        results.append(run(engine, claim=claim, within=None, channel_areas=PALU))


def _rows(engine: sa.Engine) -> tuple[list[dict], list[dict]]:
    """Every report and incident column, but the moments the work happened at."""
    with engine.connect() as c:
        reports = [{k: v for k, v in r._mapping.items() if k not in ("enriched_at", "lease_until")}
                   for r in c.execute(sa.select(Report.__table__).order_by(Report.id))]
        incidents = [{k: v for k, v in r._mapping.items() if k != "updated_at"}
                     for r in c.execute(sa.select(Incident.__table__).order_by(Incident.id))]
    return reports, incidents


@pytest.fixture
def engines(dbs):
    made = [make_engine(dbs.fresh()) for _ in range(2)]
    yield made
    for engine in made:
        engine.dispose()


def test_a_batch_gives_the_same_rows_as_one_report_at_a_time(engines):
    one, batched = engines
    for engine in engines:
        _seed(engine, alert=True)
    _enrich(one, batch=50, batching=False)
    results = _enrich(batched, batch=25, batching=True)
    assert len(results) > 1 and sum(r.done for r in results) == 66  # later batches read what earlier ones wrote
    reports, incidents = _rows(one)
    assert _rows(batched) == (reports, incidents)
    # ... and the rows exercise every branch, so equality means something.
    assert {r["processing"] for r in reports} == {"done", "skipped"}
    assert {r["geocode_method"] for r in reports} >= {"coordinates", "text", "subscriber"}
    assert sum(r["duplicate_of_id"] is not None for r in reports) >= 5
    assert any(i["report_count"] >= 3 for i in incidents) and len(incidents) >= 10
    assert any(r["alert_ids"] for r in reports) and any(r["hazard_confidence"] == 0.5 for r in reports)



def _seed_prolific(engine: sa.Engine) -> dict[str, int]:
    """One author's 120 finished, mutually different reports five minutes apart, then three new ones: one repeats
    the 11th (among the first 50 of its window), one the 61st (in its window, past the first 50), and one nine
    hours on, whose window starts three hours in, repeats the 81st (among the first 50 of that later window).
    Returns the stored ids by external id."""
    t0 = datetime(2025, 3, 1, 6, 0, tzinfo=UTC)
    words = [hashlib.sha256(str(i).encode()).hexdigest()[:24] for i in range(120)]
    new = {"again-10": (0, words[10]), "again-60": (1, words[60]), "later-again-80": (540, words[80])}
    with session_scope(engine) as s:
        old = intake.store_many(s, [
            intake.intake_values(source="api", external_id=f"old-{i}", raw={}, text=word, author="prolific",
                                 received_at=t0 + timedelta(minutes=5 * i)) for i, word in enumerate(words)])
        s.execute(sa.update(Report).values(processing="done", enriched_at=t0))
        fresh = intake.store_many(s, [
            intake.intake_values(source="api", external_id=ext, raw={}, text=f"{word} tolong", author="prolific",
                                 received_at=t0 + timedelta(minutes=minutes))
            for ext, (minutes, word) in new.items()])
    return {**{f"old-{i}": rid for i, (rid, _) in enumerate(old)}, **{e: rid for e, (rid, _) in zip(new, fresh, strict=True)}}


def test_a_prolific_author_costs_at_most_the_capped_candidates_per_report(engines):
    """Each report is compared with at most DUPLICATE_CANDIDATES earlier reports of its author (the first by id
    within its window), one by one and in a batch alike; the batch keeps only those rows, not every report the
    author sent."""
    one, batched = engines
    ids = {}
    for engine in engines:
        ids = _seed_prolific(engine)
    with session_scope(batched) as s:
        claim = enrichment.claim_batch(s, limit=10)
        read = [c.id for c in enrichment._Batch(s, enrichment.load_claimed(s, claim=claim)).by_author["prolific"]]
    # The first window holds old-0..old-72 and keeps old-0..old-49; the later one old-36..old-119, keeps old-36..85.
    assert enrichment.DUPLICATE_CANDIDATES == 50
    assert read == [ids[f"old-{i}"] for i in range(86)]
    _enrich(one, batch=10, batching=False)
    assert enrichment.enrich_claimed(batched, claim=claim, within=None) == enrichment.BatchResult(done=3)
    assert _rows(batched) == _rows(one)
    with session_scope(batched) as s:
        dup = dict(s.execute(sa.select(Report.external_id, Report.duplicate_of_id).where(Report.external_id.in_(
            ["again-10", "again-60", "later-again-80"]))).all())
    assert dup == {"again-10": ids["old-10"], "again-60": None, "later-again-80": ids["old-80"]}


def test_one_poisonous_report_fails_alone_with_its_reason(engine, monkeypatch):
    _seed(engine, n=30)
    real = geoparse.parse_location

    def poisoned(text, **kw):
        if "Birobuli" in text:
            raise ValueError("poison")
        return real(text, **kw)

    monkeypatch.setattr(geoparse, "parse_location", poisoned)
    with session_scope(engine) as s:
        claim = enrichment.claim_batch(s, limit=100)
    result = enrichment.enrich_claimed(engine, claim=claim, within=None, channel_areas=PALU)
    assert (result.done, result.failed, result.lost) == (len(claim.ids) - 1, 1, 0)
    with session_scope(engine) as s:
        bad = s.scalars(sa.select(Report).where(Report.text.contains("Birobuli"))).one()
        assert (bad.processing, bad.last_error, bad.attempts) == ("failed", "ValueError: poison", 1)
        assert bad.lease_until > utcnow()  # due again after a backoff
        states = s.scalars(sa.select(Report.processing).where(Report.id != bad.id)).all()
        assert set(states) == {"done", "skipped"}


def test_a_report_the_database_refuses_fails_alone(pg_dbs, monkeypatch):
    engine = make_engine(pg_dbs.fresh())
    try:
        _seed(engine, n=30)
        real = enrichment.geocode

        def too_long(report, **kw):
            real(report, **kw)
            if "Birobuli" in (report.text or ""):
                report.street = "x" * 500  # the column holds 200: PostgreSQL refuses the row
        monkeypatch.setattr(enrichment, "geocode", too_long)
        with session_scope(engine) as s:
            claim = enrichment.claim_batch(s, limit=100)
        result = enrichment.enrich_claimed(engine, claim=claim, within=None, channel_areas=PALU)
        assert (result.done, result.failed) == (len(claim.ids) - 1, 1)  # the batch fell back to one by one
        with session_scope(engine) as s:
            bad = s.scalars(sa.select(Report).where(Report.text.contains("Birobuli"))).one()
            assert bad.processing == "failed" and "StringDataRightTruncation" in bad.last_error
            assert s.scalar(sa.select(sa.func.count()).where(Report.processing == "done")) == len(claim.ids) - 2
    finally:
        engine.dispose()


def test_a_batch_is_enriched_once_when_run_again_or_claimed_by_another_run(engine):
    _seed(engine, n=30)
    with session_scope(engine) as s:
        stale = enrichment.claim_batch(s, limit=100)
    with session_scope(engine) as s:  # the stale run's lease ran out: another run claims the same reports
        fresh = enrichment.claim_batch(s, limit=100, now=utcnow() + enrichment.LEASE + timedelta(seconds=1))
    assert fresh.ids == stale.ids
    assert enrichment.enrich_claimed(engine, claim=stale, within=None) == enrichment.BatchResult(lost=len(stale.ids))
    with session_scope(engine) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Incident)) == 0
    done = enrichment.enrich_claimed(engine, claim=fresh, within=None, channel_areas=PALU)
    assert done == enrichment.BatchResult(done=len(fresh.ids))
    before = _rows(engine)
    # The task redelivered after the commit (acks_late): the same claim again changes nothing.
    assert enrichment.enrich_claimed(engine, claim=fresh, within=None) == enrichment.BatchResult(lost=len(fresh.ids))
    assert enrichment.enrich_one_by_one(engine, claim=fresh, within=None) == enrichment.BatchResult(
        lost=len(fresh.ids))
    assert _rows(engine) == before


class Stop(Exception):
    """Stands in for Celery's SoftTimeLimitExceeded."""


def test_a_time_limit_fails_the_report_at_hand_and_gives_the_rest_back(engine, monkeypatch):
    _seed(engine, n=10)
    real = geoparse.parse_location
    calls = {"n": 0}

    def slow(text, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise Stop()
        return real(text, **kw)

    monkeypatch.setattr(geoparse, "parse_location", slow)
    with session_scope(engine) as s:
        claim = enrichment.claim_batch(s, limit=100)
    with pytest.raises(enrichment.Interrupted):
        enrichment.enrich_claimed(engine, claim=claim, within=None, stop=(Stop,), stop_reason="time limit")
    with session_scope(engine) as s:
        rows = s.scalars(sa.select(Report).order_by(Report.id)).all()
        at_hand = [r for r in rows if r.processing == "failed"]
        assert [(r.last_error, r.attempts) for r in at_hand] == [("time limit", 1)]
        assert {r.processing for r in rows if r not in at_hand} == {"pending"}
        assert all(r.lease_until is None for r in rows if r not in at_hand)
        assert enrichment.claim_pending(s, limit=100) == [r.id for r in rows if r not in at_hand]


def test_a_time_limit_hidden_behind_a_failed_rollback_still_stops_the_run(engine, monkeypatch):
    _seed(engine, n=5)
    real = enrichment.enrich
    calls = {"n": 0}

    def cut_short(session, **kw):
        calls["n"] += 1
        if calls["n"] == 2:  # what psycopg raised when the time limit hit mid-statement and ROLLBACK then failed
            raise RuntimeError("another command is already in progress") from Stop()
        return real(session, **kw)

    monkeypatch.setattr(enrichment, "enrich", cut_short)
    with session_scope(engine) as s:
        claim = enrichment.claim_batch(s, limit=100)
    with pytest.raises(enrichment.Interrupted):
        enrichment.enrich_one_by_one(engine, claim=claim, within=None, stop=(Stop,), stop_reason="time limit")
    with session_scope(engine) as s:
        rows = {r.id: r for r in s.scalars(sa.select(Report))}
        assert rows[claim.ids[1]].last_error == "time limit" and rows[claim.ids[0]].processing == "done"
        assert {rows[i].processing for i in claim.ids[2:]} == {"pending"}

"""The intake writer: concurrent reports share one INSERT and commit, answered only once committed; duplicates
(already stored, or twice in one batch) store one row; every field survives the batched write."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from broadcast.api.app import create_app
from broadcast.db import session_scope
from broadcast.reports import intake
from broadcast.reports.intake import IntakeWriter
from broadcast.reports.models import Report
from broadcast.settings import Settings


@pytest.fixture
def client(db_url, redis_url, tmp_path):
    settings = Settings(environment="test", database_url=db_url, broker_url=redis_url, data_dir=tmp_path,
                        secret_key="test-secret-key-123", report_api_keys={"partner": "partner-key"})
    with TestClient(create_app(settings)) as c:
        yield c


def _row(ext: str, text: str = "banjir 50 cm di Kampung Melayu", **fields) -> dict:
    return intake.intake_values(source="api", external_id=ext, raw={"caller": "partner:t", "text": text, "n": [1, 2]},
                                text=text, author=None, **fields)


def _count(engine, ext_prefix: str) -> int:
    with session_scope(engine) as s:
        return s.scalar(sa.select(sa.func.count()).select_from(Report).where(Report.external_id.like(f"{ext_prefix}%")))


def test_a_batch_stores_new_rows_once_and_gives_existing_ids(engine):
    with session_scope(engine) as s:
        (first_id, created), = intake.store_many(s, [_row("b-old")])
    assert created
    wib = timezone(timedelta(hours=7))
    at = datetime(2026, 11, 26, 20, 30, tzinfo=wib)
    rows = [
        _row("b-new", "Banjir ± 70 cm, Jl. Otista", lat=-6.2437, lon=106.8697, media=["https://x.id/a.jpg"],
             received_at=at, language="id", hazard="banjir"),
        _row("b-old"),
        _row("b-twice"),
        _row("b-twice"),
    ]
    with session_scope(engine) as s:
        out = intake.store_many(s, rows)
    assert [created for _, created in out] == [True, False, True, False]
    assert out[1][0] == first_id and out[2][0] == out[3][0]
    assert len({rid for rid, _ in out}) == 3
    assert _count(engine, "b-") == 3
    with session_scope(engine) as s:
        new = s.get(Report, out[0][0])
        assert (new.text, new.lat, new.lon, new.media) == ("Banjir ± 70 cm, Jl. Otista", -6.2437, 106.8697,
                                                           ["https://x.id/a.jpg"])
        assert new.raw == {"caller": "partner:t", "text": "Banjir ± 70 cm, Jl. Otista", "n": [1, 2]}
        assert new.received_at == at.astimezone(UTC)
        assert (new.hazard, new.language, new.state, new.processing, new.attempts) == ("banjir", "id", "new",
                                                                                       "pending", 0)
        assert (new.place_names, new.alert_ids, new.author_hash, new.depth_cm) == ([], [], None, None)


@pytest.mark.parametrize("batching", [True, False], ids=["batched", "per-request"])
def test_concurrent_submits_are_all_committed_before_their_answer(engine, batching):
    kicks = []
    writer = IntakeWriter(engine, after_commit=lambda: kicks.append(1), batching=batching)
    keys = [f"c-{i}" for i in range(60)] + [f"c-{i}" for i in range(0, 60, 6)]  # ten sent twice at once

    async def submit_all():
        async def one(key):
            result = await writer.submit(_row(key))
            # Answered only once committed: a fresh connection already sees the row.
            with session_scope(engine) as s:
                assert s.scalar(sa.select(Report.id).where(Report.external_id == key)) == result[0]
            return result

        return await asyncio.gather(*(one(k) for k in keys))

    results = asyncio.run(submit_all())
    assert _count(engine, "c-") == 60
    assert sum(created for _, created in results) == 60
    by_key: dict[str, set[int]] = {}
    for key, (rid, _) in zip(keys, results, strict=True):
        by_key.setdefault(key, set()).add(rid)
    assert all(len(ids) == 1 for ids in by_key.values())
    assert kicks


def test_a_report_the_database_refuses_fails_alone_and_its_batch_mates_are_stored(engine):
    writer = IntakeWriter(engine, after_commit=lambda: None)
    bad = _row("f-bad")
    bad["source"] = "x" * 40  # longer than the column: PostgreSQL refuses the batch; SQLite stores anything

    async def submit_all():
        rows = [_row("f-ok-1"), bad, _row("f-ok-2")]
        return await asyncio.gather(*(writer.submit(r) for r in rows), return_exceptions=True)

    ok_1, refused, ok_2 = asyncio.run(submit_all())
    assert ok_1[1] and ok_2[1]
    assert _count(engine, "f-ok-") == 2
    if engine.dialect.name == "postgresql":
        assert isinstance(refused, sa.exc.DataError)
        assert _count(engine, "f-bad") == 0


def test_text_the_database_cannot_store_is_refused_with_a_4xx(client, engine):
    for text in [r"banjir\u0000", r"banjir \ud800", "banjir\x00"]:  # JSON escapes, then a raw NUL
        body = '{"text": "' + text + '", "external_id": "nul"}'
        response = client.post("/api/v1/reports", content=body,
                               headers={"X-API-Key": "partner-key", "Content-Type": "application/json"})
        assert response.status_code in (400, 422), response.text  # malformed JSON or refused text
    ok = client.post("/api/v1/reports", json={"text": "banjir", "external_id": "fine"}, headers={"X-API-Key": "partner-key"})
    assert ok.status_code == 202 and _count(engine, "partner:") == 1


def test_the_postgresql_batch_statement_names_every_intake_column():
    # json_to_recordset drops keys it is not told about: a field added to intake_values must be added there too.
    assert set(_row("k")) == {name for name, _ in intake._RECORDSET_COLUMNS}

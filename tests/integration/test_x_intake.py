"""Mentions of the agency X accounts become reports: real tweepy against the fake X API, a durable checkpoint."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from broadcast.db import session_factory
from broadcast.reports import intake
from broadcast.reports.models import Report
from channels.base import ChannelUnavailable
from channels.social import XAccount, XConfig, XConnection
from tests.fakes.x_api import FakeX

pytestmark = pytest.mark.integration
PALU = XAccount("72.71", "bpbdpalu", "4271", "tok-palu", "sec-palu")
KEY = b"test-author-key"


@pytest.fixture
def fake():
    with FakeX() as f:
        f.add_user("901", "warga_palu")
        yield f


def client_for(fake):
    connection = XConnection.build(XConfig("ck", "cs", (PALU,)), PALU)
    fake.attach(connection.client, timeout_s=5)
    return connection.client


def ingest(engine, fake):
    with session_factory(engine).begin() as s:
        return intake.ingest_x_mentions(s, client=client_for(fake), account=PALU.handle, user_id=PALU.user_id,
                                        author_key=KEY)


def test_mentions_polled_twice_and_after_a_restart_give_each_report_once(engine, fake):
    first = [fake.add_mention("4271", f"@bpbdpalu banjir di Tondo RT {n}", author_id="901") for n in range(3)]
    assert ingest(engine, fake) == 3
    assert ingest(engine, fake) == 0  # nothing new
    later = fake.add_mention("4271", "@bpbdpalu air naik sepinggang di Talise", author_id="901")
    engine.dispose()  # a restart: nothing in memory survives, the checkpoint does
    assert ingest(engine, fake) == 1
    with session_factory(engine)() as s:
        reports = s.scalars(sa.select(Report).order_by(Report.id)).all()
        assert [r.external_id for r in reports] == [*first, later]
        assert all(r.source == "x" and r.state == "new" for r in reports)
        assert reports[-1].text.endswith("sepinggang di Talise")
        assert reports[0].author_hash == intake.author_hash(KEY, "@warga_palu")
        assert "warga_palu" not in str(reports[0].raw)
        assert intake.get_checkpoint(s, name="x-mentions:4271") == later
    since = [r.query.get("since_id") for r in fake.requests if r.path.endswith("/mentions")]
    assert since[0] is None and since[-1] == [first[-1]]


def test_coordinates_are_kept_when_the_post_has_them(engine, fake):
    tweet_id = fake.add_mention("4271", "@bpbdpalu longsor di sini", author_id="901")
    fake.mentions["4271"][-1]["geo"] = {"coordinates": {"type": "Point", "coordinates": [119.87, -0.9]}}
    assert ingest(engine, fake) == 1
    with session_factory(engine)() as s:
        report = s.scalar(sa.select(Report).where(Report.external_id == tweet_id))
        assert (report.lon, report.lat) == (119.87, -0.9)


def test_a_rate_limit_stores_nothing_and_keeps_the_checkpoint(engine, fake):
    fake.add_mention("4271", "@bpbdpalu gempa terasa", author_id="901")
    fake.rate_limit_next("GET", "/2/users/4271/mentions", reset=int(time.time()) + 30)
    with pytest.raises(ChannelUnavailable) as err:
        ingest(engine, fake)
    assert getattr(err.value, "retry_after", None)
    with session_factory(engine)() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Report)) == 0
        assert intake.get_checkpoint(s, name="x-mentions:4271") is None
    assert ingest(engine, fake) == 1  # the next beat reads it


def test_keyword_search_is_read_from_its_checkpoint_once(engine, fake):
    query = "banjir OR longsor"
    fake.add_post("Banjir sepaha di Jl. Sis Aljufri, Palu", author_id="901")
    fake.add_post("Cuaca cerah hari ini", author_id="901")
    for _ in range(12):  # more than one page of results
        fake.add_post("longsor kecil di Kawatuna", author_id="902")

    def run():
        with session_factory(engine).begin() as s:
            return intake.ingest_x_search(s, client=client_for(fake), query=query, author_key=KEY)

    assert run() == 13
    assert run() == 0
    fake.add_post("banjir lagi di Tondo", author_id="901")
    assert run() == 1
    with session_factory(engine)() as s:
        texts = s.scalars(sa.select(Report.text).where(Report.source == "x")).all()
        assert "Cuaca cerah hari ini" not in texts and len(texts) == 14
        assert all(r["account"] == f"search:{query}" for r in s.scalars(sa.select(Report.raw)))

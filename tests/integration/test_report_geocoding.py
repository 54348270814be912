"""Reports from the example text are placed (issue 23): enrichment on SQLite and PostgreSQL stores the place, the
depth and the reason; an X mention of a regional account is placed inside that account's area."""

import pytest
import sqlalchemy as sa

from broadcast.db import session_scope
from broadcast.reports import enrichment, exports, intake
from broadcast.reports.models import Report
from channels.base import InboundEvent

pytestmark = pytest.mark.integration
KEY = b"k" * 32


def _enrich_all(engine, **kwargs):
    with session_scope(engine) as s:
        ids = enrichment.claim_pending(s, limit=100)
    for report_id in ids:
        with session_scope(engine) as s:
            enrichment.enrich(s, report_id=report_id, **kwargs)


def test_the_example_report_is_placed_with_depth_and_reason(engine):
    with session_scope(engine) as s:
        intake.intake(
            s,
            source="api",
            external_id="ex-1",
            raw={"text": "x"},
            text="banjir setinggi lutut di Kelurahan Talise",
            author=None,
        )
        intake.intake(
            s,
            source="api",
            external_id="ex-2",
            raw={"text": "x"},
            text="Genangan di Kel. Birobuli Utara, Kec. Palu Selatan, Jl. Soekarno Hatta",
            author=None,
        )
    _enrich_all(engine)
    with session_scope(engine) as s:
        talise, birobuli = s.scalars(sa.select(Report).order_by(Report.id)).all()
        assert (talise.admin_code, talise.kecamatan_code, talise.depth_cm) == ("72.71.08.1003", "72.71.08", 50)
        assert (talise.hazard, talise.geocode_method) == ("banjir", "text")
        assert "71.06.06.2003" in talise.geocode_reason  # the other Talise, and why not
        assert talise.lat is not None
        assert (birobuli.admin_code, birobuli.kecamatan_code, birobuli.street) == (
            "72.71.03.1002",
            "72.71.03",
            "soekarno hatta",
        )
        assert birobuli.place_names == ["birobuli utara", "palu selatan"]
        assert exports.report_summary(talise)["geocode_reason"] == talise.geocode_reason


def test_an_x_mention_is_placed_inside_the_accounts_area(engine):
    with session_scope(engine) as s:
        event = InboundEvent(
            source="x",
            external_id="77",
            sender="42",
            text="@BPBDPalu air naik sepinggang di Talise",
            raw={"tweet": {"id": "77", "author_id": "42"}},
        )
        intake.store_x_post(s, event=event, account="BPBDPalu", author_key=KEY)
    _enrich_all(engine, channel_areas={"bpbdpalu": "72.71"})
    with session_scope(engine) as s:
        report = s.scalars(sa.select(Report)).one()
        assert (report.admin_code, report.depth_cm, report.geocode_method) == ("72.71.08.1003", 100, "text")
        assert "72.71" in report.geocode_reason

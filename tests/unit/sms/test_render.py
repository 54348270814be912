from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from channels.base import AlertData, InfoData, Recipient
from channels.sms import Encoding, SmsRenderer, sms_segments

LINK = "https://bpbd.example.id/p/7QX2"
LONG_DESC = (
    "Hujan deras sejak pukul 02.00 WIB menyebabkan Sungai Palu meluap di Kelurahan Lere, Ujuna dan Baru; "
    "ketinggian air mencapai 80 cm di permukiman dan diperkirakan naik hingga siang hari. "
    "Jalan Cumi-Cumi dan Jalan Rajamoili tidak dapat dilalui kendaraan roda dua."
)
LONG_INSTR = (
    "Segera mengungsi ke tempat yang lebih tinggi, matikan listrik, bawa dokumen penting dan obat-obatan, "
    "jauhi aliran sungai dan ikuti arahan petugas BPBD di lapangan."
)


def alert(
    status="Actual",
    *,
    headline="Banjir di Kota Palu",
    description=LONG_DESC,
    instruction=LONG_INSTR,
    max_segments=None,
    en_headline="Flooding in Palu",
):
    infos = (
        InfoData(
            "id-ID", "Banjir", "Met", "Immediate", "Severe", "Likely", headline, description, instruction
        ),
        InfoData(
            "en-US",
            "Flood",
            "Met",
            "Immediate",
            "Severe",
            "Likely",
            en_headline,
            "The Palu river overflowed in Lere, Ujuna and Baru; water is 80 cm deep.",
            "Move to higher ground now, switch off electricity and follow BPBD officers.",
        ),
    )
    return AlertData(
        id=7,
        identifier="BCAST-7",
        sender="bpbd@test",
        status=status,
        msg_type="Alert",
        sent=datetime(2026, 11, 26, 3, 0, tzinfo=UTC),
        expires=None,
        area_desc="Kota Palu",
        public_url="http://127.0.0.1:8000/peringatan/BCAST-7",
        infos=infos,
        short_url=LINK,
        sms_max_segments=max_segments,
    )


@pytest.mark.parametrize("budget", [1, 2, 3])
@pytest.mark.parametrize(
    ("status", "mark"), [("Actual", None), ("Exercise", "[LATIHAN] "), ("Test", "[TEST/UJI COBA] ")]
)
def test_fitted_text_respects_budget_and_keeps_mark_and_link(budget, status, mark):
    r = SmsRenderer(max_segments=budget)
    text = r.marked_text(alert(status), "id")
    fitted = r.fit(alert(status), "id")
    # LONG_INSTR is one 161-character sentence: it never fits one segment, and is never cut to make it fit.
    assert LONG_INSTR in text
    assert fitted.fits == fitted.action_fits == (budget > 1)
    if budget > 1:
        assert sms_segments(text).segments <= budget
    assert text.endswith(f"Info: {LINK}")
    if mark:
        assert text.startswith(mark)
    else:
        assert not text.startswith("[")
    assert "Banjir di Kota Palu." in text


def test_description_goes_before_the_instruction_is_touched():
    text = SmsRenderer(max_segments=2).marked_text(alert(), "id")
    assert LONG_INSTR in text  # the whole instruction survives at 2 segments
    assert "Hujan deras" in text and "..." in text  # the description was cut at a word, with a GSM-7 ellipsis
    cut = text.split("...")[0]
    assert LONG_DESC.startswith(cut.split("Palu. ", 1)[1])
    assert not cut.endswith(" ")


def test_one_segment_keeps_the_first_instruction_sentence_whole_and_says_it_is_over_budget():
    fitted = SmsRenderer(max_segments=1).fit(alert("Exercise"), "id")
    text = SmsRenderer(max_segments=1).marked_text(alert("Exercise"), "id")
    assert "Hujan" not in text
    assert text == f"[LATIHAN] Banjir di Kota Palu. {LONG_INSTR} Info: {LINK}"
    assert not fitted.fits and not fitted.action_fits and fitted.first_instruction == LONG_INSTR
    info = sms_segments(text)
    assert info.encoding is Encoding.GSM7 and info.segments == 2


def test_text_that_fits_is_left_whole():
    short = alert(description="Sungai meluap.", instruction="Segera mengungsi.")
    text = SmsRenderer().marked_text(short, "id")
    assert text == f"Banjir di Kota Palu. Sungai meluap. Segera mengungsi. Info: {LINK}"


def test_ucs2_text_is_cut_with_a_single_ellipsis_character():
    a = alert(headline="Banjir 🌊 di Kota Palu", instruction="Segera mengungsi ke tempat tinggi.", max_segments=3)
    text = SmsRenderer().marked_text(a, "id")
    info = sms_segments(text)
    assert info.encoding is Encoding.UCS2 and info.segments <= 3
    assert "…" in text and "..." not in text
    assert "di Kota Palu. Hujan deras" in text and "Segera mengungsi ke tempat tinggi." in text
    assert text.endswith(LINK)


def test_typographic_quotes_are_normalised_so_the_text_stays_gsm7():
    a = alert(
        description="Warga diminta “tetap tenang” — jangan panik…", instruction="Ikuti arahan petugas’."
    )
    text = SmsRenderer(max_segments=1).marked_text(a, "id")
    assert sms_segments(text).encoding is Encoding.GSM7
    assert '"tetap tenang" - jangan panik...' in text


def test_mark_and_link_survive_even_when_they_alone_exceed_the_budget():
    long_link = "https://bpbd.example.id/" + "x" * 150
    a = replace(alert("Exercise"), short_url=long_link)
    fitted = SmsRenderer(max_segments=1).fit(a, "id")
    text = SmsRenderer(max_segments=1).marked_text(a, "id")
    assert not fitted.fits and fitted.truncated
    assert text.startswith("[LATIHAN] ") and text.endswith(long_link)


def test_public_url_is_the_link_without_a_short_one():
    a = replace(alert(description="", instruction="Segera mengungsi."), short_url=None)
    assert SmsRenderer().marked_text(a, "id").endswith("Info: http://127.0.0.1:8000/peringatan/BCAST-7")


def test_alert_budget_overrides_the_renderer_default_and_is_checked():
    r = SmsRenderer(max_segments=1)
    assert sms_segments(r.marked_text(alert(max_segments=3), "id")).segments == 3
    with pytest.raises(ValueError):
        r.marked_text(alert(max_segments=4), "id")
    with pytest.raises(ValueError):
        SmsRenderer(max_segments=0)


def test_preview_reports_encoding_segments_characters_and_cost():
    r = SmsRenderer(max_segments=2, price_per_segment=Decimal("0.05"), currency="USD")
    previews = {p.language: p for p in r.preview(alert("Exercise"))}
    p = previews["id-ID"]
    assert p.text.startswith("[LATIHAN] ")
    info = sms_segments(p.text)
    assert p.details["encoding"] == "GSM-7"
    assert p.details["segments"] == info.segments == 2
    assert p.details["characters"] == len(p.text)
    assert p.details["units"] == info.units
    assert p.details["max_segments"] == 2 and p.details["fits"] is True and p.details["truncated"] is True
    assert p.details["cost_per_message"] == "0.10" and p.details["currency"] == "USD"
    assert previews["en-US"].text.startswith("[EXERCISE] ")


def test_render_uses_the_same_fitted_text_per_language():
    r = SmsRenderer()
    msgs = r.render(
        alert(), [Recipient("sub:1", "+6281200000001", "id"), Recipient("sub:2", "+6281200000002", "en")]
    )
    assert msgs[0].text == r.marked_text(alert(), "id")
    assert msgs[1].text.startswith("Flooding in Palu.")


def test_estimate_cost_multiplies_segments_recipients_and_price():
    r = SmsRenderer(max_segments=2, price_per_segment=Decimal("0.05"))
    a = alert()
    seg_id = sms_segments(r.marked_text(a, "id")).segments
    seg_en = sms_segments(r.marked_text(a, "en")).segments
    assert r.estimate_cost(a, {"id": 1000, "en": 10}) == Decimal("0.05") * (seg_id * 1000 + seg_en * 10)

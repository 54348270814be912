"""Verification codes, the CEK/HOAKS commands, and the code in SMS within the segment budget."""

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from broadcast.trust import codes
from broadcast.trust.verify import normalise_text
from channels.base import AlertData, InfoData
from channels.sms import CommandKind, SmsRenderer, parse_command, sms_segments


def test_codes_use_the_unambiguous_alphabet_and_are_read_loosely():
    made = {codes.new_code() for _ in range(200)}
    assert len(made) == 200
    assert all(len(c) == 6 and set(c) <= set(codes.ALPHABET) for c in made)
    assert not set("ILOU") & set(codes.ALPHABET)
    assert codes.normalise(" 7kq2-mo ") == "7KQ2M0"
    assert codes.normalise("7KQ2MI") == "7KQ2M1"
    assert codes.normalise("7KQ2") is None and codes.normalise("7KQ2MX9") is None and codes.normalise("7KQ2M!") is None
    assert codes.find_in_text("... Info: https://x.id/p/4 Kode: 7KQ2MX") == "7KQ2MX"
    assert codes.find_in_text("Code 7kq2mx") == "7KQ2MX"
    assert codes.find_in_text("no code here 7KQ2MX") is None


@pytest.mark.parametrize(
    ("text", "kind", "argument", "language"),
    [
        ("CEK 7KQ2MX", CommandKind.CHECK, "7KQ2MX", "id"),
        ("cek: 7kq2mx", CommandKind.CHECK, "7kq2mx", "id"),
        ("CHECK 7KQ2MX", CommandKind.CHECK, "7KQ2MX", "en"),
        ("HOAKS Awas! Tsunami jam 3, sebarkan!!", CommandKind.HOAX, "Awas! Tsunami jam 3, sebarkan!!", "id"),
        ("hoax: fake quake warning", CommandKind.HOAX, "fake quake warning", "en"),
    ],
)
def test_check_and_hoax_commands(text, kind, argument, language):
    cmd = parse_command(text)
    assert (cmd.kind, cmd.argument, cmd.language) == (kind, argument, language)


def _alert(**info_overrides):
    info = InfoData(
        language="id-ID", event="Banjir", category="Met", urgency="Immediate", severity="Severe", certainty="Likely",
        headline="Banjir di Kota Palu", description="Hujan lebat menyebabkan sungai meluap " * 6,
        instruction="Segera mengungsi ke tempat yang lebih tinggi dan jauhi sungai.",
    )
    return AlertData(
        id=7, identifier="x", sender="s", status="Exercise", msg_type="Alert", sent=datetime(2026, 1, 1, tzinfo=UTC),
        expires=None, area_desc="Kota Palu", public_url="https://peringatan.example.id/peringatan/x",
        short_url="https://peringatan.example.id/p/7", infos=(replace(info, **info_overrides),),
        verify_code="7KQ2MX", verify_url="https://peringatan.example.id/cek",
    )


@pytest.mark.parametrize("budget", [1, 2, 3])
def test_the_code_survives_shortening_and_the_text_fits_the_budget(budget):
    alert = replace(_alert(), sms_max_segments=budget)
    text = SmsRenderer().marked_text(alert, "id")
    assert text.startswith("[LATIHAN]") and text.endswith("Kode: 7KQ2MX Info: https://peringatan.example.id/p/7")
    assert sms_segments(text).segments <= budget
    without = SmsRenderer().marked_text(replace(alert, verify_code=None), "id")
    assert "Kode" not in without


def test_text_normalisation_is_only_cosmetic():
    assert normalise_text("  Banjir\u00a0di  “Palu”\n…  ") == 'Banjir di "Palu" ...'
    assert normalise_text("Banjir di Palu") != normalise_text("Banjir di Paiu")

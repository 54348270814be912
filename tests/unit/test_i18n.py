"""Local time and Indonesian labels as people read them (templates/i18n.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import phonenumbers
import pytest

from templates import i18n

MOMENT = datetime(2026, 12, 7, 12, 52, tzinfo=UTC)


@pytest.mark.parametrize(
    ("code", "abbr"),
    [
        ("72.71", "WITA"),  # Kota Palu, Sulawesi Tengah
        ("34.04", "WIB"),  # Sleman, DI Yogyakarta
        ("91.71", "WIT"),  # Kota Jayapura, Papua
        ("33.15.01", "WIB"),  # Grobogan
        ("51.71", "WITA"),  # Denpasar
        ("61.71", "WIB"),  # Pontianak
        ("64.72", "WITA"),  # Samarinda
        ("81.71", "WIT"),  # Ambon
        ("96.71", "WIT"),  # Sorong, Papua Barat Daya
        (None, "WIB"),
    ],
)
def test_zone_follows_the_province(code, abbr):
    assert i18n.zone_of(code).abbr == abbr


def test_indonesian_and_english_forms():
    assert i18n.format_time(MOMENT, i18n.WITA, "id") == "Senin, 7 Desember 2026 pukul 20.52 WITA"
    assert i18n.format_time(MOMENT, i18n.WITA, "en") == "Mon 7 Dec 2026, 20:52 WITA"
    assert i18n.format_time(MOMENT, i18n.WIB, "id") == "Senin, 7 Desember 2026 pukul 19.52 WIB"
    assert i18n.format_time(MOMENT, i18n.WIT, "id") == "Senin, 7 Desember 2026 pukul 21.52 WIT"
    assert i18n.format_time(None) == "—"


def test_an_area_across_zones_names_each():
    zones = i18n.zones_of(["72.71", "34.04", "72.03"])
    assert [z.abbr for z in zones] == ["WITA", "WIB"]
    assert i18n.format_time(MOMENT, zones, "id").endswith("pukul 20.52 WITA (19.52 WIB)")


def test_the_local_day_can_differ_from_the_utc_day():
    late = datetime(2026, 12, 31, 16, 59, tzinfo=UTC)  # 31 December 23:59 WIB, already 1 January in WITA
    assert i18n.format_time(late, i18n.WIB, "id") == "Kamis, 31 Desember 2026 pukul 23.59 WIB"
    assert i18n.format_time(late, i18n.WITA, "id") == "Jumat, 1 Januari 2027 pukul 00.59 WITA"


@pytest.mark.parametrize("day", range(1, 32))
def test_no_date_reads_as_a_phone_number(day):
    for hour in (0, 8, 13, 23):
        moment = datetime(2026, 12, day, hour, 8, tzinfo=UTC)
        for lang in ("id", "en"):
            for text in (i18n.format_time(moment, i18n.WITA, lang), i18n.format_short(moment, i18n.WIB, lang)):
                assert [m.raw_string for m in phonenumbers.PhoneNumberMatcher(text, "ID")] == [], text


def test_labels_are_indonesian_first():
    assert i18n.label("severity", "Severe") == "Parah"
    assert i18n.label("severity", "Severe", "en") == "Severe"
    assert i18n.label("state", "cancelled") == "Dibatalkan"
    assert i18n.label("report_status", "new") == "Baru"
    assert i18n.label("severity", "Whatever") == "Whatever"

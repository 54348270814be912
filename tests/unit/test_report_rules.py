"""Pure report rules and the geoparser: hazards, depth, duplicates, Indonesian place names in sentences."""

import pytest

from broadcast.reports import rules
from geo import geoparse


@pytest.mark.parametrize(
    ("text", "hazard"),
    [
        ("Banjir sepinggang di Kampung Melayu", "banjir"),
        ("Jln. Laksana mulai tergenang", "genangan"),
        ("Tanah longsor menutup jalan desa", "longsor"),
        ("Gempa terasa kuat sekali barusan", "gempa"),
        ("Flooding on our street, water knee deep", "banjir"),
        ("Kebakaran rumah di gang 3", "kebakaran"),
        ("Gunung meletus, hujan abu tebal", "erupsi"),
        ("Angin puting beliung merobohkan atap", "angin"),
        ("Banjir bandang dari hulu sungai", "banjir_bandang"),
    ],
)
def test_hazard_keywords_in_both_languages(text, hazard):
    guess = rules.classify_hazard(text)
    assert guess.hazard == hazard
    assert 0 < guess.confidence < 1


def test_no_hazard_words_no_guess():
    assert rules.classify_hazard("Tolong bantuan pompa airnya").hazard is None


@pytest.mark.parametrize(
    ("text", "cm", "severity"),
    [
        ("air sudah sepinggang orang dewasa", 100, "berat"),
        ("genangan selutut", 50, "sedang"),
        ("Banjir sekitar 100 cm, di Jl.Penegak Raya.", 100, "berat"),
        ("Sudah masuk rumah 7cm", 7, "ringan"),
        ("tinggi air 1,5 m", 150, "sangat_berat"),
        ("udh sedada org dewasa", 130, "berat"),
    ],
)
def test_depth_cues(text, cm, severity):
    assert rules.depth_cm(text) == cm
    assert rules.severity_for(rules.depth_cm(text)) == severity


def test_near_duplicates():
    assert rules.is_near_duplicate("Banjir di Jl. Dermaga RT 14!!", "banjir di jl dermaga rt 14")
    assert not rules.is_near_duplicate("Banjir di Jl. Dermaga", "Longsor di Desa Bangga")


def test_triage_transitions():
    assert "verified" in rules.TRANSITIONS["new"]
    assert not rules.TRANSITIONS["actioned"]


def test_geoparser_finds_kampung_melayu_in_a_sentence():
    found = geoparse.parse_location("Banjir sudah sepinggang di Kampung Melayu sejak subuh, mohon bantuan", within="31")
    assert found.place is not None
    assert (found.place.nama, found.place.kode) == ("Kampung Melayu", "31.75.03.1001")
    assert found.kecamatan == "31.75.03"  # Jatinegara


def test_geoparser_finds_kec_jatinegara_and_the_rw():
    # Jatinegara is a kecamatan in Jakarta Timur and in Tegal: an agency's region settles which.
    found = geoparse.parse_location("Air masuk rumah warga di RW 05 Kec. Jatinegara, tolong kirim perahu", within="31")
    assert found.place is not None and found.place.nama == "Jatinegara" and found.place.level == "kecamatan"
    assert found.kecamatan == "31.75.03"
    assert found.rw == "5"


def test_geoparser_prefers_the_kelurahan_inside_the_named_kecamatan():
    # "Kampung Melayu" alone names kelurahan/desa in several provinces; the kecamatan settles which.
    found = geoparse.parse_location("banjir di kp melayu kec jatinegara")
    assert found.place is not None and found.place.kode == "31.75.03.1001"


def test_geoparser_street_rt_rw_and_misspelt_kelurahan():
    found = geoparse.parse_location(
        "Banjir di jl dermaga kp tegal amba rt 14 rw 11 kel klendr udh sedada", within="31"
    )
    assert found.street == "dermaga"
    assert (found.rt, found.rw) == ("14", "11")
    assert found.place is not None and found.place.nama == "Klender"


def test_naive_baseline_needs_the_exact_kecamatan_name():
    assert geoparse.naive_kecamatan("Banjir di Jatinegara", within="31") == "31.75.03"
    assert geoparse.naive_kecamatan("Banjir di Kampung Melayu", within="31") is None

"""Pure report rules and the geoparser: hazards, depth, duplicates, Indonesian place names in sentences."""

import re

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


def test_keyword_scores_over_a_batch_equal_searching_each_text_alone():
    from broadcast.reports import petabencana

    texts = [r.text for r in petabencana.load_reports()[:300]] + ["", "banjir", "banjir bandang banjir", "api api"]
    normalised = [rules.normalise_text(t) for t in texts]
    alone = [
        {h: s for h, pats in rules.HAZARD_RULES.items() if (s := sum(w for p, w in pats if re.search(p, n)))}
        for n in normalised
    ]
    assert rules.hazard_scores(normalised) == alone
    assert sum(bool(a) for a in alone) > 200  # the texts do name hazards


def test_an_incident_centre_does_not_depend_on_the_order_of_its_reports():
    from datetime import UTC, datetime

    points = [(-6.2 + i * 1e-7 + (1e-3 if i % 7 == 0 else 0), 106.8 + i * 3e-7) for i in range(101)]
    at = [datetime(2026, 1, 1, tzinfo=UTC)] * len(points)
    forward = rules.incident_extent(points, at, [None] * len(points))
    backward = rules.incident_extent(points[::-1], at, [None] * len(points))
    assert (forward.lat, forward.lon) == (backward.lat, backward.lon) and forward.count == 101

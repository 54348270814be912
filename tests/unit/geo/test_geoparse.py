"""The report-text geoparser: streets, markers, tie-breaks with reasons, and bounded work on hostile text."""

import pytest

from broadcast.reports import rules
from broadcast.reports.enrichment import arrival_jurisdiction, geocode
from broadcast.reports.models import Report
from geo import gazetteer, geoparse

TALISE_PALU = "72.71.08.1003"  # a kelurahan in Mantikulore, Kota Palu
TALISE_MINAHASA = "71.06.06.2003"  # a desa in Minahasa Utara


def test_the_example_report_is_placed_in_palu_with_its_depth():
    text = "banjir setinggi lutut di Kelurahan Talise"
    found = geoparse.parse_location(text)
    assert found.place is not None and found.place.kode == TALISE_PALU
    assert found.kecamatan == "72.71.08"
    assert TALISE_MINAHASA in found.reason  # the place not chosen is named in the reason
    assert "kelurahan" in found.reason.split(" / ")[1]  # English half says why
    assert rules.depth_cm(text) == 50


def test_desa_marker_picks_the_desa_of_the_same_name():
    found = geoparse.parse_location("air naik di Desa Talise")
    assert found.place is not None and found.place.kode == TALISE_MINAHASA


def test_a_bare_name_of_two_places_is_ambiguous_with_a_reason():
    found = geoparse.parse_location("banjir di Talise")
    assert found.place is None and found.kecamatan is None and found.ambiguous
    assert TALISE_PALU in found.reason and TALISE_MINAHASA in found.reason


def test_the_senders_registered_area_breaks_the_tie():
    assert geoparse.parse_location("banjir di Talise", registered="71.06").place.kode == TALISE_MINAHASA
    # A sender registered in another kelurahan of the same kecamatan, or only in the province.
    assert geoparse.parse_location("banjir di Talise", registered="72.71.08.1002").place.kode == TALISE_PALU
    assert geoparse.parse_location("banjir di Talise", registered="72.10").place.kode == TALISE_PALU
    found = geoparse.parse_location("banjir di Talise", registered="72.71.08")
    assert found.place.kode == TALISE_PALU
    assert "registered area (72.71.08)" in found.reason


def test_the_arrival_jurisdiction_breaks_the_tie_after_the_registered_area():
    found = geoparse.parse_location("banjir di Talise", jurisdiction="72")
    assert found.place.kode == TALISE_PALU and "jurisdiction" in found.reason
    # The sender's own area says more than the channel's.
    assert geoparse.parse_location("banjir di Talise", registered="71", jurisdiction="72").place.kode == (
        TALISE_MINAHASA
    )


def test_the_same_name_inside_the_jurisdiction_beats_a_desa_far_away():
    # Seven desa named Kembangan outscore the kecamatan Kembangan (Jakarta Barat) by their level only.
    assert geoparse.parse_location("Banjir di kembangan").kecamatan is None
    found = geoparse.parse_location("Banjir di kembangan", jurisdiction="31")
    assert found.kecamatan == "31.73.08" and "inside the sender's or channel's area (31)" in found.reason


def test_one_everyday_word_naming_a_desa_outside_the_jurisdiction_places_nothing():
    # "Lurah" is a desa in Cirebon and the word for a kelurahan's head.
    assert geoparse.parse_location("banjir pak lurah tolong").kecamatan == "32.09.18"
    found = geoparse.parse_location("banjir pak lurah tolong", jurisdiction="31")
    assert found.place is None and "outside the jurisdiction" in found.reason
    # Inside the jurisdiction, or named with a level word, it still counts.
    assert geoparse.parse_location("banjir desa lurah", jurisdiction="31").kecamatan == "32.09.18"
    assert geoparse.parse_location("banjir pak lurah tolong", jurisdiction="32.09").kecamatan == "32.09.18"


def test_other_places_named_break_the_tie_before_any_hint():
    # Tondo is a kelurahan in Palu (Mantikulore) and a desa in Donggala and in Parigi Moutong.
    found = geoparse.parse_location("banjir di Tondo, Kec. Mantikulore", registered="72.03")
    assert found.place is not None and found.place.kode == "72.71.08.1002"
    assert "mantikulore" in found.reason


def test_kel_and_kec_after_a_comma_are_two_places():
    found = geoparse.parse_location("Kel. Birobuli Utara, Kec. Palu Selatan banjir")
    assert found.names == ["birobuli utara", "palu selatan"]
    assert found.place is not None and found.place.kode == "72.71.03.1002"
    assert found.kecamatan == "72.71.03"


def test_a_name_never_runs_into_a_marker_or_across_punctuation():
    found = geoparse.parse_location("Ketinggian air 2 meter di Kel.Kampung Melayu Kec.Jatinegara Jakarta Timur")
    assert "kampung melayu" in found.names and "jatinegara" in found.names
    assert found.place is not None and found.place.kode == "31.75.03.1001"


@pytest.mark.parametrize(
    ("text", "street"),
    [
        ("Banjir di Jl. Soekarno Hatta depan kantor", "soekarno hatta"),
        ("genangan di Jalan Soekarno Hatta, Palu", "soekarno hatta"),
        ("Banjir di jl dermaga kp tegal amba rt 14", "dermaga"),  # a marker ends the street
        ("genangan selutut di Jl. Dermaga Klender", "dermaga"),  # a kelurahan's name ends it
        ("jln. Kamboja VI msh tergenang", "kamboja vi"),  # its number is part of it
        ("Banjir di jln kebon jeruk 11 gang mesjid", "kebon jeruk 11"),
        ("Jalan Nusa Indah; sudah surut", "nusa indah"),  # punctuation ends it
        ("Banjir tinggi di jl. Bangun jaya #cuacaekstrim", "bangun jaya"),
    ],
)
def test_multi_word_street_names_run_to_the_next_marker_or_punctuation(text, street):
    assert geoparse.parse_location(text).street == street


@pytest.mark.parametrize("within", [None, "72"])
def test_soekarno_hatta_is_a_street_not_a_place(within):
    found = geoparse.parse_location("Banjir di Jl. Soekarno Hatta", within=within)
    assert found.street == "soekarno hatta" and found.place is None
    assert "hatta" not in found.names
    assert found.reason  # even no answer has a reason
    # A street that starts with a place's name still tells the place.
    assert geoparse.parse_location("Jl. Kampung Melayu Besar banjir", within="31").kecamatan == "31.75.03"


def test_a_river_named_after_a_place_does_not_place_the_report():
    found = geoparse.parse_location("Kali Pesanggrahan meluap, tolong", within="31")
    assert found.place is None and found.names == []
    # A kelurahan whose name starts with Kali still counts.
    assert geoparse.parse_location("banjir di Kali Baru", within="31").kecamatan == "31.72.04"


def test_an_estate_named_after_a_place_only_supports_other_names():
    alone = geoparse.parse_location("Banjir di komplek Cipinang Indah II", within="31")
    assert alone.place is None and "estate" in alone.reason
    with_kelurahan = geoparse.parse_location("Perum Kapuk Mas, Kel. Kapuk Muara banjir", within="31")
    assert with_kelurahan.place is not None and with_kelurahan.place.nama == "Kapuk Muara"


def test_a_landmark_named_after_a_kelurahan_only_supports_other_names():
    # Stasiun Mangga Besar is in Sawah Besar; the kelurahan Mangga Besar is in Taman Sari.
    alone = geoparse.parse_location("Stasiun Mangga Besar. #banjirkiriman", within="31")
    assert alone.place is None and "landmark" in alone.reason
    assert geoparse.parse_location("banjir di Mangga Besar", within="31").kecamatan == "31.73.03"
    # Named with its kelurahan's kecamatan it places the report; after a level word it is no landmark.
    assert geoparse.parse_location("depan mall Klender, Duren Sawit", within="31").kecamatan == "31.75.07"
    assert geoparse.parse_location("pasar Kel. Klender", within="31").kecamatan == "31.75.07"
    # A landmark named after a kecamatan is inside it.
    assert geoparse.parse_location("Depan Mal Kelapa Gading banjir", within="31").kecamatan == "31.72.06"


def test_well_known_area_names_place_a_report_with_a_reason():
    found = geoparse.parse_location("banjir di Kp. Pulo sudah sepinggang", within="31")
    assert found.place is not None and found.place.nama == "Kampung Melayu" and found.kecamatan == "31.75.03"
    assert "well-known area name" in found.reason
    assert geoparse.parse_location("Banjir di perumahan Daan Mogot Estate", within="31").kecamatan == "31.73.01"
    # The area is itself the estate: "Indah" after it does not weaken it as it weakens an official name.
    assert geoparse.parse_location("Banjir di Taman Ratu Indah blok D7", within="31").kecamatan == "31.73.05"
    # Official names only: no answer.
    assert geoparse.parse_location("banjir di Kp. Pulo", within="31", areas=False).place is None
    # Every entry names a real code.
    assert all(p.kode.startswith("31.") for p in geoparse.known_areas().values())


def test_two_names_of_the_same_place_agree():
    # "Taman Ratu" (an estate in Duri Kepa) and "Duri Kepa" name one kelurahan: it wins over the kota.
    found = geoparse.parse_location("Mulai genang di taman ratu indah, duri kepa jakarta barat", within="31")
    assert found.place is not None and found.place.nama == "Duri Kepa"


def test_a_name_split_by_direction_names_its_parts():
    found = geoparse.parse_location("Banjir d tanjung duren raya depan pemadam", within="31")
    assert found.kecamatan == "31.73.02"  # Tanjung Duren Utara and Selatan are both in Grogol Petamburan


def test_no_place_says_so():
    assert geoparse.parse_location("#drainaseburuk").reason.endswith("no place name in the text")
    street_only = geoparse.parse_location("Jl. Albezia tergenang")
    assert street_only.street == "albezia" and "only the street" in street_only.reason


@pytest.mark.parametrize(
    ("text", "cm"),
    [
        ("banjir setinggi lutut", 50),
        ("air setinggi pinggang orang dewasa", 100),
        ("setinggi dada", 130),
        ("sudah setinggi leher", 150),
        ("rumah terendam setinggi atap", 250),
        ("air se-lutut", 50),
        ("air se lutut di depan rumah", 50),
        ("banjir sampai pinggang", 100),
        ("banjir sampai 50 cm", 50),
        ("kali meluap hingga mencapai lutut orang dewasa", 50),
        ("setinggi mata kaki", 10),
        ("Ketinggian 50-90cm", 90),
        ("banjir setinggi 2 m", 200),
        ("air 1,5 meter", 150),
        ("genangan 30 cm", 30),
    ],
)
def test_depth_phrases(text, cm):
    assert rules.depth_cm(text) == cm


@pytest.mark.parametrize(
    "text",
    ["angin kencang, atap terbang", "200 meter dari kantor kecamatan", "sepanjang kali kurang lebih 100m", "banjir"],
)
def test_no_depth_in_wind_damage_or_distances(text):
    assert rules.depth_cm(text) is None


class _Budget:
    """Counts gazetteer.contains calls and stops the test when a report needs more than a linear budget."""

    def __init__(self, limit: int) -> None:
        self.calls = 0
        self.limit = limit
        self.real = gazetteer.contains

    def __call__(self, outer: str, inner: str) -> bool:
        self.calls += 1
        if self.calls > self.limit:
            raise AssertionError(f"more than {self.limit} code comparisons for one report: not linear")
        return self.real(outer, inner)


@pytest.mark.parametrize("within", [None, "33"])
def test_repeated_names_with_many_places_cost_the_same_as_one(monkeypatch, within):
    # "sidomulyo" names 99 places; the old parser compared every pair of repeats' candidates (n² · 99²).
    geoparse.parse_location("banjir sidomulyo", within=within)  # warm the indexes
    budget = _Budget(5_000)
    monkeypatch.setattr(gazetteer, "contains", budget)
    once = geoparse.parse_location("banjir sidomulyo", within=within)
    calls_once = budget.calls
    sms = geoparse.parse_location("banjir " + "sidomulyo " * 160, within=within)
    api = geoparse.parse_location("banjir " + "sidomulyo " * 400, within=within)
    assert once.work == sms.work == api.work <= 2 * geoparse.MAX_CANDIDATES
    assert budget.calls <= 3 * calls_once + 10
    assert api.names == ["sidomulyo"] * 400  # every mention is still reported


def test_the_work_per_report_is_capped_with_a_reason():
    names = [p.nama for p in gazetteer.places_at("kecamatan") if p.kode.startswith("33.")][:60]
    text = "banjir di " + ", ".join(names)
    found = geoparse.parse_location(text)
    assert found.capped
    assert "work cap" in found.reason
    assert found.work <= geoparse.MAX_WORK + geoparse.MAX_MENTIONS * geoparse.MAX_CANDIDATES


def test_misspelling_searches_are_capped_with_a_reason():
    text = " ".join(f"kel sidomulyx{i}" for i in range(20))
    found = geoparse.parse_location(text)
    assert found.capped and "misspelt" in found.reason


def test_geocode_uses_the_x_accounts_area_and_keeps_the_reason():
    report = Report(source="x", raw={"account": "BPBDPalu"}, text="air naik sepinggang di Talise")
    assert arrival_jurisdiction(report, {"bpbdpalu": "72.71"}) == "72.71"
    geocode(report, within=None, channel_areas={"bpbdpalu": "72.71"})
    assert (report.admin_code, report.geocode_method) == (TALISE_PALU, "text")
    assert "72.71" in report.geocode_reason


def test_geocode_uses_the_senders_registered_area_as_a_tie_break():
    report = Report(source="sms", raw={}, text="banjir di Talise", admin_code="71.06.06")
    geocode(report, within=None)
    assert (report.admin_code, report.geocode_method) == (TALISE_MINAHASA, "text")
    unnamed = Report(source="sms", raw={}, text="banjir besar", admin_code="72.71.08")
    geocode(unnamed, within=None)
    assert (unnamed.admin_code, unnamed.kecamatan_code, unnamed.geocode_method) == (
        "72.71.08",
        "72.71.08",
        "subscriber",
    )
    assert "registered area" in unnamed.geocode_reason


def test_glued_words_and_handles():
    # "di" written onto the name, a number glued to a hashtag, an account people tag.
    assert geoparse.parse_location("banjir dimangga besar 4H", within="31").kecamatan == "31.73.03"
    assert geoparse.parse_location("#drainaseburuk #kebagusan2", within="31").kecamatan == "31.74.04"
    assert geoparse.parse_location("tolong @lurahklender banjir", within="31").place is None


def test_a_depth_phrase_alone_says_flood():
    assert rules.classify_hazard("air setinggi lutut di depan rumah").hazard == "banjir"


@pytest.mark.parametrize(
    "text",
    ["", "kel", "jl.", "Kel. , Kec. ,", "kel " * 500, "di" * 2000, "\u200bkel\u200b talise", "rt 01/02 ١٢٣"],
)
def test_odd_text_gets_an_answer_with_a_reason(text):
    found = geoparse.parse_location(text, registered="72.71.08.1003", jurisdiction="72")
    assert found.reason

import pytest

from broadcast.alerts import hazards

REQUIRED_KEYS = {"banjir", "banjir_bandang", "tanah_longsor", "gempa_bumi", "tsunami", "erupsi_gunung_api",
                 "cuaca_ekstrem", "karhutla", "kekeringan", "angin_puting_beliung"}


def test_catalog_has_every_required_hazard():
    assert {h.key for h in hazards.catalog()} >= REQUIRED_KEYS


@pytest.mark.parametrize("hazard", hazards.catalog(), ids=lambda h: h.key)
def test_each_template_fills_both_languages_from_its_examples(hazard):
    infos = hazards.render(hazard.key, {f.name: f.example for f in hazard.fields})
    assert [i.language for i in infos] == ["id-ID", "en-US"]
    for info in infos:
        assert info.headline and info.description and info.instruction
        assert info.hazard == hazard.key
        assert "{{" not in info.description + info.instruction
    required = [f for f in hazard.fields if f.required]
    for field in required:
        assert field.example in infos[0].headline + infos[0].description + infos[0].instruction


def test_missing_required_and_unknown_fields_are_reported():
    with pytest.raises(hazards.MissingFields, match="lokasi"):
        hazards.render("banjir", {})
    with pytest.raises(hazards.MissingFields, match="warna"):
        hazards.render("banjir", {"lokasi": "Palu", "warna": "merah"})
    with pytest.raises(hazards.UnknownHazard):
        hazards.render("meteor", {})


def test_optional_fields_leave_no_dangling_words():
    info = hazards.render("banjir", {"lokasi": "Palu"})[0]
    assert info.description == "Banjir terjadi atau diperkirakan terjadi di Palu."

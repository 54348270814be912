"""Every hazard template × CAP status × message type × language at 1, 2 and 3 segments: the SMS is composed
by priority, so the first instruction sentence (a Cancel's reason) is always whole, the mark leads, the code
and link close, and the text stays GSM-7 when its parts are."""

from dataclasses import replace

import pytest

from broadcast.alerts import hazards
from channels.base import AlertData, InfoData, status_mark
from channels.sms import Encoding, SmsRenderer, is_gsm7, normalise_gsm7, sms_segments
from channels.text import as_sentence, change_line, sentences

LINK = "https://peringatan.bpbd-palu.go.id/p/12345"
CODE = "7KQ2MX"
REASONS = {
    "id": "Air sudah surut dan warga boleh kembali ke rumah",
    "en": "The water has receded and people may go home",
}


def infos_for(key: str, **overrides: str) -> tuple[InfoData, ...]:
    hazard = hazards.get_hazard(key)
    fields = {f.name: f.example for f in hazard.fields} | overrides
    return tuple(
        InfoData(
            i.language,
            i.event,
            i.category,
            i.urgency,
            i.severity,
            i.certainty,
            i.headline,
            i.description,
            i.instruction,
        )
        for i in hazards.render(key, fields)
    )


def alert_for(key: str, status: str, msg_type: str) -> AlertData:
    infos = infos_for(key)
    previous: tuple[InfoData, ...] = ()
    if msg_type == "Update":
        previous = infos
        # The update raises the level and adds a sentence, as an operator would.
        infos = tuple(
            replace(
                i,
                severity="Extreme",
                description=i.description
                + (" Air terus naik." if i.language.startswith("id") else " The water is still rising."),
            )
            for i in infos
        )
    elif msg_type == "Cancel":
        # As create_follow_up builds a Cancel: no instruction, the reason in each language's description.
        infos = tuple(
            replace(i, instruction="", description=REASONS[i.language[:2]], severity="Minor", urgency="Past")
            for i in infos
        )
    return AlertData(
        id=12345,
        identifier="BCAST-1",
        sender="bpbd@palu",
        status=status,
        msg_type=msg_type,
        sent=None,
        expires=None,
        area_desc="Kecamatan Palu Barat, Kota Palu",
        public_url="https://x/peringatan/BCAST-1",
        short_url=LINK,
        infos=infos,
        verify_code=CODE,
        previous_infos=previous,
        previous_area_desc="Kecamatan Palu Barat, Kota Palu" if previous else None,
    )


def first_action(info: InfoData) -> str:
    return as_sentence((sentences(info.instruction) or sentences(info.description))[0])


@pytest.mark.parametrize("msg_type", ["Alert", "Update", "Cancel"])
@pytest.mark.parametrize("status", ["Actual", "Exercise", "Test"])
@pytest.mark.parametrize("key", [h.key for h in hazards.catalog()])
def test_first_instruction_sentence_is_always_whole(key, status, msg_type):
    alert = alert_for(key, status, msg_type)
    for info in alert.infos:
        lang = info.language[:2]
        for budget in (1, 2, 3):
            renderer = SmsRenderer(max_segments=budget)
            text = renderer.marked_text(alert, info.language)
            fitted = renderer.fit(alert, info.language)
            seg = sms_segments(text)
            where = f"{key}/{status}/{msg_type}/{lang}/{budget}: {text!r}"
            assert normalise_gsm7(first_action(info)) in text, where
            assert fitted.first_instruction == first_action(info), where
            mark = status_mark(status, lang)
            assert text.startswith(f"[{mark}] ") if mark else not text.startswith("["), where
            assert text.endswith(f" Kode: {CODE} Info: {LINK}"), where
            # The sentence before the code ends with its full stop (the English Cancel lacked one).
            assert text.split(" Kode: ")[0][-1] in ".!?…", where
            if fitted.action_fits:
                assert seg.segments <= budget and fitted.fits, where
            else:  # over budget only to keep the essentials whole, and the preview says so
                assert seg.segments > budget and not fitted.fits, where
            parts = " ".join(x for i in alert.infos if i is info for x in (i.headline, i.description, i.instruction))
            if is_gsm7(normalise_gsm7(parts)):
                assert seg.encoding is Encoding.GSM7, where
            if msg_type == "Update":
                lead = {"id": "PEMBARUAN. Perubahan: ", "en": "UPDATE. Change: "}[lang]
                assert lead in text.split(info.headline[:20])[0], where
            if msg_type == "Cancel":
                other = REASONS["en" if lang == "id" else "id"]
                assert other not in text and REASONS[lang] in text, where


@pytest.mark.parametrize("key", [h.key for h in hazards.catalog()])
def test_severe_and_extreme_templates_fit_their_whole_action_in_the_default_budget(key):
    alert = alert_for(key, "Exercise", "Alert")
    renderer = SmsRenderer()
    budget = renderer.budget(alert)
    severity = alert.infos[0].severity
    assert budget.source == "severity" and budget.segments == (3 if severity in ("Extreme", "Severe") else 1)
    for preview in renderer.preview(alert):
        assert preview.details["max_segments"] == budget.segments
        assert preview.details["budget_severity"] == severity
        if budget.segments == 3:
            assert preview.details["action_fits"] and preview.details["segments"] <= 3, preview.text


def test_severe_flood_sms_keeps_the_whole_action_and_the_evacuation_site():
    # The example: at one segment the instruction was cut after "amankan dokumen penting, dan".
    alert = alert_for("banjir", "Actual", "Alert")
    text = SmsRenderer().marked_text(alert, "id")
    assert "segera pindah ke tempat yang lebih tinggi atau ke SDN 01 Kampung Melayu." in text
    assert "Jangan berjalan atau berkendara melewati arus banjir." in text
    assert "Ketinggian air 50-100 cm." in text  # the description fits three segments too
    assert sms_segments(text).segments <= 3


def test_rest_of_instruction_comes_before_the_description_and_nothing_is_cut_mid_instruction():
    alert = alert_for("banjir", "Actual", "Alert")
    for budget in (1, 2, 3):
        text = SmsRenderer(max_segments=budget).marked_text(alert, "id")
        # Either the second instruction sentence is there whole, or not at all.
        assert ("Jangan berjalan atau berkendara melewati arus banjir." in text) or ("Jangan" not in text)
        if "Banjir terjadi" in text:
            assert "Jangan berjalan" in text


def test_a_setting_budget_applies_to_every_alert_and_an_alert_budget_beats_it():
    alert = alert_for("kekeringan", "Actual", "Alert")
    assert SmsRenderer().budget(alert).segments == 1  # Moderate
    assert SmsRenderer(max_segments=2).budget(alert).source == "setting"
    assert SmsRenderer(severity_budgets={"Moderate": 2}).budget(alert).segments == 2
    assert SmsRenderer(max_segments=2).budget(replace(alert, sms_max_segments=3)).segments == 3


def test_update_leads_with_what_changed_in_each_language():
    infos = infos_for("banjir", ketinggian_air="50-100 cm")
    new = infos_for("banjir", ketinggian_air="100-150 cm")
    alert = replace(
        alert_for("banjir", "Actual", "Alert"),
        msg_type="Update",
        infos=new,
        previous_infos=infos,
        area_desc="Kecamatan Palu Barat, Kota Palu; Kecamatan Ulujadi, Kota Palu",
        previous_area_desc="Kecamatan Palu Barat, Kota Palu",
    )
    ind = SmsRenderer().marked_text(alert, "id")
    eng = SmsRenderer().marked_text(alert, "en")
    assert ind.startswith(
        "PEMBARUAN. Perubahan: wilayah ditambah: Kecamatan Ulujadi, Kota Palu; Ketinggian air 100-150 cm. "
        "Peringatan banjir:"
    ), ind
    assert eng.startswith(
        "UPDATE. Change: area added: Kecamatan Ulujadi, Kota Palu; Water depth 100-150 cm. Flood warning:"
    ), eng
    assert sms_segments(ind).encoding is Encoding.GSM7


def test_update_with_a_new_level_says_so_in_indonesian_words():
    infos = infos_for("banjir")
    alert = replace(
        alert_for("banjir", "Actual", "Alert"),
        msg_type="Update",
        infos=tuple(replace(i, severity="Extreme") for i in infos),
        previous_infos=infos,
    )
    assert "Perubahan: tingkat bahaya kini Ekstrem (sebelumnya Parah)." in SmsRenderer().marked_text(alert, "id")
    assert "Change: severity now Extreme (was Severe)." in SmsRenderer().marked_text(alert, "en")


def test_update_without_a_detectable_change_keeps_the_plain_label():
    infos = infos_for("banjir")
    alert = replace(alert_for("banjir", "Actual", "Alert"), msg_type="Update", previous_infos=infos)
    assert SmsRenderer().marked_text(alert, "id").startswith("PEMBARUAN: Peringatan banjir:")


def test_english_cancel_has_its_full_stop_before_the_code():
    alert = alert_for("banjir", "Actual", "Cancel")
    eng = SmsRenderer().marked_text(alert, "en")
    assert eng == (
        "CANCELLED: Flood warning: Kelurahan Kampung Melayu, Jakarta Timur. Area: Palu Barat, Palu. "
        f"The water has receded and people may go home. Kode: {CODE} Info: {LINK}"
    )
    without_reason = replace(alert, infos=tuple(replace(i, description="") for i in alert.infos))
    assert (
        SmsRenderer()
        .marked_text(without_reason, "en")
        .startswith("CANCELLED: Flood warning: Kelurahan Kampung Melayu, Jakarta Timur. Area: Palu Barat, Palu. Kode:")
    )


def test_where_is_left_out_when_the_headline_names_the_area():
    alert = replace(alert_for("banjir", "Actual", "Alert"), area_desc="Kota Jakarta Timur")
    infos = tuple(replace(i, headline=i.headline.replace("Kelurahan Kampung Melayu, ", "")) for i in alert.infos)
    text = SmsRenderer().marked_text(replace(alert, infos=infos), "id")
    assert "Wilayah:" not in text and text.startswith("Peringatan banjir: Jakarta Timur.")


def test_a_long_area_list_names_the_first_places_and_counts_the_rest():
    desas = "; ".join(f"Desa Nomor{n}" for n in range(1, 30))
    text = SmsRenderer().marked_text(replace(alert_for("banjir", "Actual", "Alert"), area_desc=desas), "id")
    assert "Wilayah: Nomor1, Nomor2," in text and "wilayah lain." in text


@pytest.mark.parametrize("key", [h.key for h in hazards.catalog()])
def test_x_update_posts_say_what_changed_within_280(key):
    from channels.social import XRenderer
    from channels.social.x_render import weighted_length

    alert = alert_for(key, "Exercise", "Update")
    for info in alert.infos:
        posts = XRenderer().language_posts(alert, info)
        word = "Perubahan: " if info.language.startswith("id") else "Change: "
        assert word + change_line(alert, info.language) in posts[0]
        assert "naik" in posts[0] or "rising" in posts[0]
        assert all(weighted_length(p) <= 280 for p in posts)


@pytest.mark.parametrize(
    ("lang", "lead", "plain"),
    [
        ("id", "KOREKSI. Perubahan: Ketinggian air 100-150 cm. Peringatan banjir:", "KOREKSI: Peringatan banjir:"),
        ("en", "CORRECTION. Change: Water depth 100-150 cm. Flood warning:", "CORRECTION: Flood warning:"),
    ],
)
def test_a_correction_is_labelled_as_one_and_says_what_it_corrects(lang, lead, plain):
    # A correction is an Update (create_follow_up(correction=True)), marked as such for the channels.
    before = infos_for("banjir", ketinggian_air="50-100 cm")
    alert = replace(
        alert_for("banjir", "Actual", "Alert"),
        msg_type="Update",
        correction=True,
        infos=infos_for("banjir", ketinggian_air="100-150 cm"),
        previous_infos=before,
    )
    text = SmsRenderer().marked_text(alert, lang)
    assert text.startswith(lead), text
    assert "PEMBARUAN" not in text and "UPDATE" not in text
    assert sms_segments(text).encoding is Encoding.GSM7
    unchanged = replace(alert, infos=before)
    assert SmsRenderer().marked_text(unchanged, lang).startswith(plain)
    exercise = SmsRenderer().marked_text(replace(alert, status="Exercise"), lang)
    assert exercise.startswith(f"[{status_mark('Exercise', lang)}] {lead}"), exercise


def test_x_correction_posts_are_labelled_as_corrections():
    from channels.social import XRenderer

    alert = replace(alert_for("banjir", "Actual", "Update"), correction=True)
    for info in alert.infos:
        post = XRenderer().language_posts(alert, info)[0]
        word = "KOREKSI" if info.language.startswith("id") else "CORRECTION"
        assert word in post and "PEMBARUAN" not in post and "UPDATE" not in post, post

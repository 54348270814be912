import dataclasses

import pytest

from channels.base import Recipient
from channels.social import MAX_WEIGHT, XRenderer, weighted_length
from tests.unit.social.conftest import PNG, make_alert, with_instructions

MARKS = [
    ("Actual", "", ""),
    ("Exercise", "[LATIHAN] ", "[EXERCISE] "),
    ("Test", "[TEST/UJI COBA] ", "[TEST] "),
]
LONG_ID = " ".join(
    f"Langkah {n}: matikan listrik, bawa dokumen penting, dan menuju titik kumpul {n}." for n in range(1, 9)
)
LONG_EN = " ".join(
    f"Step {n}: switch off power, take documents and go to assembly point {n}." for n in range(1, 7)
)


def thread(alert, language="id"):
    return XRenderer().render_thread(alert, language)


def test_short_alert_is_one_post_per_language_with_tags_and_link():
    posts = thread(make_alert())
    assert [p.language for p in posts] == ["id-ID", "en-US"]
    lead = posts[0].text
    assert lead.startswith("Banjir di Kota Palu\n")
    assert "Segera mengungsi ke tempat yang lebih tinggi." in lead
    assert lead.endswith("#banjir #Palu https://peringatan.bpbd.go.id/peringatan/BCAST-1")
    assert posts[1].text.endswith("#flood #Palu https://peringatan.bpbd.go.id/peringatan/BCAST-1")
    assert all(p.weighted_length == weighted_length(p.text) for p in posts)


@pytest.mark.parametrize(("status", "mark_id", "mark_en"), MARKS)
def test_long_instruction_becomes_a_thread_every_post_marked_and_within_280(status, mark_id, mark_en):
    posts = thread(with_instructions(make_alert(status), LONG_ID, LONG_EN))
    ids = [p for p in posts if p.language == "id-ID"]
    ens = [p for p in posts if p.language == "en-US"]
    assert len(ids) >= 3 and len(ens) >= 2
    # Indonesian first (lead, then its continuation), English after as replies.
    assert posts == ids + ens
    for p in ids:
        assert p.text.startswith(mark_id) and p.weighted_length <= MAX_WEIGHT
    for p in ens:
        assert p.text.startswith(mark_en) and p.weighted_length <= MAX_WEIGHT
    assert ids[0].text.endswith(f"BCAST-1 (1/{len(ids)})")
    assert ids[-1].text.endswith(f"({len(ids)}/{len(ids)})")
    # Nothing of the instruction is lost in the split.
    body = " ".join(p.text.removeprefix(mark_id).rsplit(" (", 1)[0] for p in ids[1:])
    assert body == LONG_ID


def test_mark_survives_when_headline_and_area_must_be_shortened():
    alert = make_alert(
        "Exercise", area_desc="; ".join(f"Kecamatan Nama Panjang Sekali {n}" for n in range(30))
    )
    infos = tuple(dataclasses.replace(i, headline="Peringatan " * 40) for i in alert.infos)
    posts = thread(dataclasses.replace(alert, infos=infos))
    for p in posts:
        assert p.weighted_length <= MAX_WEIGHT
        assert p.text.startswith(("[LATIHAN] ", "[EXERCISE] "))
    assert "…" in posts[0].text
    assert "https://peringatan.bpbd.go.id/peringatan/BCAST-1" in posts[0].text


def test_emoji_and_cjk_heavy_instruction_fits_by_weight_not_by_len():
    alert = with_instructions(make_alert("Test"), "⚠️ 避難してください 🏃\u200d♀️ " * 30, "Go now.")
    posts = thread(alert)
    assert len(posts) > 2
    assert all(p.weighted_length <= MAX_WEIGHT for p in posts)
    assert all(p.text.startswith(("[TEST/UJI COBA] ", "[TEST] ")) for p in posts)


def test_render_puts_the_thread_after_the_first_post_in_the_recipient_language():
    alert = with_instructions(make_alert("Exercise", map_png=PNG), LONG_ID, "Go now.")
    (msg,) = XRenderer().render(alert, [Recipient("public", alert.public_url, "id-ID")])
    posts = thread(alert)
    assert msg.text == posts[0].text and msg.thread == tuple(p.text for p in posts[1:])
    assert msg.image_png == PNG and msg.image_alt.startswith("Peta wilayah peringatan banjir: Kota Palu")
    (en,) = XRenderer().render(alert, [Recipient("public", alert.public_url, "en")])
    assert en.text.startswith("[EXERCISE] ") and en.thread[-1].startswith("[LATIHAN] ")


def test_preview_lists_each_post_with_weight_and_image():
    alert = with_instructions(make_alert("Exercise", map_png=PNG), LONG_ID, "Go now.")
    previews = XRenderer().preview(alert)
    assert [p.details["position"] for p in previews] == list(range(1, len(previews) + 1))
    assert [p.details["has_image"] for p in previews] == [True] + [False] * (len(previews) - 1)
    assert all(p.details["weighted_length"] == weighted_length(p.text) <= 280 for p in previews)
    assert all(p.details["of"] == len(previews) for p in previews)
    assert not any(p.details["has_image"] for p in XRenderer().preview(make_alert()))


@pytest.mark.parametrize(
    ("msg_type", "label_id", "label_en", "quote", "reply"),
    [
        ("Update", "PEMBARUAN: ", "UPDATE: ", None, "111"),
        ("Cancel", "DIBATALKAN: ", "CANCELLED: ", None, "111"),
        ("Error", "KOREKSI: ", "CORRECTION: ", None, "111"),
    ],
)
def test_updates_cancels_and_corrections_reply_to_the_original(msg_type, label_id, label_en, quote, reply):
    alert = make_alert("Exercise", msg_type=msg_type, original_provider_ids={"social": "111", "sms": "SM1"})
    (msg,) = XRenderer().render(alert, [Recipient("public", alert.public_url, "id")])
    assert msg.text.startswith(f"[LATIHAN] {label_id}Banjir di Kota Palu")
    assert msg.thread[0].startswith(f"[EXERCISE] {label_en}Flooding in Palu")
    assert (msg.quote_of, msg.reply_to) == (quote, reply)
    linked = "https://x.com/i/web/status/111" in msg.text
    assert linked is (msg_type == "Error")


def test_update_without_an_original_post_still_says_what_changed():
    alert = make_alert(msg_type="Update")
    (msg,) = XRenderer().render(alert, [Recipient("public", alert.public_url, "id")])
    assert msg.text.startswith("PEMBARUAN: ") and msg.quote_of is None and msg.reply_to is None


def test_marked_text_is_the_first_post():
    alert = with_instructions(make_alert("Exercise"), LONG_ID, LONG_EN)
    assert XRenderer().marked_text(alert, "id") == thread(alert)[0].text
    assert XRenderer().render_text(make_alert(), "en").startswith("Flooding in Palu")

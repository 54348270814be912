import pytest

from channels.social import hashtags, place_names, weighted_length
from channels.social.x_render import clusters, shorten, split_to_fit


@pytest.mark.parametrize(
    ("text", "weight"),
    [
        ("", 0),
        ("a" * 280, 280),
        ("Banjir di Kota Palu", 19),
        # Any URL counts 23, however long, with or without a scheme.
        ("https://peringatan.bpbd.go.id/peringatan/BCAST-2026-000123?lang=id&utm=x", 23),
        ("bpbd.palukota.go.id/peringatan/1", 23),
        ("Lihat https://bpbd.go.id/a dan http://x.co", 6 + 23 + 5 + 23),
        # Any emoji sequence counts 2: ZWJ family, skin tone, flag, keycap, tag flag, VS16 heart.
        ("👨\u200d👩\u200d👧\u200d👦", 2),
        ("👍🏽", 2),
        ("🇮🇩", 2),
        ("1\ufe0f\u20e3", 2),
        ("🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f", 2),
        ("❤\ufe0f", 2),
        ("Awas 🌊🌊", 5 + 2 + 2),
        # CJK and Hangul weigh 2 each.
        ("日本語", 6),
        ("한국", 4),
        # NFC first: a decomposed é is one character of weight 1.
        ("e\u0301", 1),
        ("é" * 10, 10),
        # Vietnamese ế composes to U+1EBF, beyond U+10FF, so it weighs 2.
        ("Tie\u0302\u0301ng", 6),
        # General punctuation: the em dash is in the weight-1 range, the ellipsis (U+2026) and € are not.
        ("\u2014", 1),
        ("\u2026", 2),
        ("€", 2),
        ("a\r\nb", 3),
    ],
)
def test_weighted_length_follows_twitter_text_v3(text, weight):
    assert weighted_length(text) == weight


@pytest.mark.parametrize(
    ("area", "names"),
    [
        ("Kota Palu", ["Palu"]),
        ("Kabupaten Sigi", ["Sigi"]),
        ("Kab. Donggala; Kota Palu", ["Donggala", "Palu"]),
        ("Kecamatan Palu Barat, Kota Palu", ["Palu Barat", "Palu"]),
        ("Kota Administrasi Jakarta Selatan", ["Jakarta Selatan"]),
        ("Provinsi Sulawesi Tengah", ["Sulawesi Tengah"]),
        ("  ", []),
    ],
)
def test_place_names_strip_administrative_prefixes(area, names):
    assert place_names(area) == names


def test_hashtags_by_hazard_and_place():
    assert hashtags("Banjir", "Kota Palu") == ["#banjir", "#Palu"]
    assert hashtags("Gempa Bumi", "Kecamatan Palu Barat, Kota Palu") == ["#gempabumi", "#PaluBarat", "#Palu"]
    assert hashtags("Tanah Longsor", "Kabupaten Sigi; Kabupaten Sigi") == ["#tanahlongsor", "#Sigi"]


def test_hashtags_skip_unlinkable_tags_and_cap_places():
    assert hashtags("123", "Kota 50") == []
    assert hashtags("Banjir", "Kota A; Kota B; Kota C; Kota D") == ["#banjir", "#A", "#B", "#C"]
    assert hashtags("Kebakaran Hutan & Lahan", "Kota Palu") == ["#kebakaranhutanlahan", "#Palu"]


def test_clusters_keep_emoji_sequences_and_accents_whole():
    assert clusters("a👨\u200d👩\u200d👧e\u0301🇮🇩🇯🇵👍🏽") == [
        "a",
        "👨\u200d👩\u200d👧",
        "e\u0301",
        "🇮🇩",
        "🇯🇵",
        "👍🏽",
    ]


def test_split_to_fit_prefers_sentences_then_words_then_clusters():
    ok = lambda s: weighted_length(s) <= 20  # noqa: E731
    assert split_to_fit("Satu dua. Tiga empat lima. Enam.", ok) == ["Satu dua.", "Tiga empat lima.", "Enam."]
    chunks = split_to_fit("kata " * 12, ok)
    assert all(ok(c) for c in chunks) and " ".join(chunks) == " ".join(["kata"] * 12)
    cjk = "日本語" * 10
    chunks = split_to_fit(cjk, ok)
    assert "".join(chunks) == cjk and all(weighted_length(c) <= 20 for c in chunks)
    emoji = "👨\u200d👩\u200d👧" * 15
    assert all(c.count("\u200d") % 2 == 0 for c in split_to_fit(emoji, ok))


def test_shorten_cuts_at_words_with_an_ellipsis():
    ok = lambda s: len(s) <= 12  # noqa: E731
    assert shorten("Banjir", ok) == "Banjir"
    assert shorten("Banjir bandang di Palu", ok) == "Banjir…"
    assert shorten("Supercalifragilistic", ok) == "Supercalifr…"
    assert shorten("abc", lambda s: False) == ""

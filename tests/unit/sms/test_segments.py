import random

import pytest
import regex

from channels.sms import Encoding, is_gsm7, normalise_gsm7, sms_segments

# REFERENCE §2's implementation, verified there against the npm calculator on 284 cases: the oracle.
GSM = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
EXT = set("\f^{}\\[]~|€")


def reference_segments(t):
    gsm = all(c in GSM or c in EXT for c in t)
    atoms = (
        list(t)
        if gsm
        else [g for x in regex.findall(r"\X", t) for g in (["\r", "\n"] if x == "\r\n" else [x])]
    )
    u = [sum(2 if c in EXT else 1 for c in a) if gsm else len(a.encode("utf-16-le")) // 2 for a in atoms]
    one, per = (160, 153) if gsm else (70, 67)
    if sum(u) <= one:
        return int(bool(t))
    n, free = 1, per
    for x in u:
        if x > free:
            n, free = n + 1, per
        free -= x
    return n


@pytest.mark.parametrize(
    ("text", "encoding", "segments", "units", "limit"),
    [
        ("", Encoding.GSM7, 0, 0, 160),
        ("A" * 160, Encoding.GSM7, 1, 160, 160),
        ("A" * 161, Encoding.GSM7, 2, 161, 153),
        ("A" * 306, Encoding.GSM7, 2, 306, 153),
        ("A" * 307, Encoding.GSM7, 3, 307, 153),
        ("€" * 80, Encoding.GSM7, 1, 160, 160),  # extension characters cost two septets
        ("€" * 81, Encoding.GSM7, 2, 162, 153),
        ("A" * 152 + "€" + "A" * 152, Encoding.GSM7, 3, 306, 153),  # the escape pair is never split
        ("A" * 151 + "€" + "A" * 153, Encoding.GSM7, 2, 306, 153),
        ("A" * 159 + "😀", Encoding.UCS2, 3, 161, 67),  # one emoji makes the whole body UCS-2
        ("😀" * 35, Encoding.UCS2, 1, 70, 70),
        ("😀" * 36, Encoding.UCS2, 2, 72, 67),
        ("A" * 69 + "’", Encoding.UCS2, 1, 70, 70),
        ("A" * 70 + "’", Encoding.UCS2, 2, 71, 67),  # a single typographic apostrophe: UCS-2
        ("A" * 66 + "😀" + "A" * 10, Encoding.UCS2, 2, 78, 67),  # the surrogate pair moves to segment 2
        ("A" * 66 + "👍🏽" + "A" * 10, Encoding.UCS2, 2, 80, 67),  # a skin-tone cluster is never split
    ],
)
def test_segment_counts(text, encoding, segments, units, limit):
    info = sms_segments(text)
    assert (info.encoding, info.segments, info.units, info.limit) == (encoding, segments, units, limit)
    assert info.segments == reference_segments(text)


def test_surrogate_pair_and_clusters_at_the_boundary_start_a_new_segment():
    # 66 units then a 2-unit emoji: it would straddle 67, so it opens segment 2 (3 segments at the end).
    text = "A" * 66 + "😀" + "A" * 66 + "😀"
    assert sms_segments(text).segments == reference_segments(text) == 3
    family = "👨‍👩‍👧"  # one grapheme cluster of 8 UTF-16 units
    text = "A" * 60 + family + "A" * 10
    info = sms_segments(text)
    assert info.units == 78 and info.segments == 2 and info.characters == 71


def test_crlf_counts_as_two_units_in_ucs2():
    assert sms_segments("😀\r\n").units == 4


def test_matches_the_reference_on_random_mixtures():
    rng = random.Random(7)
    alphabet = ["A", "é", "€", "[", "\n", "\r\n", "’", "😀", "👍🏽", "ä", "é", "ñ", "ü", "Δ", "€", "~", " "]
    for _ in range(400):
        pieces = rng.choices(alphabet, k=rng.randint(0, 260))
        gsm_only = rng.random() < 0.5
        text = "".join(p for p in pieces if not gsm_only or is_gsm7(p))
        assert sms_segments(text).segments == reference_segments(text), text


def test_smart_encoding_turns_ucs2_back_into_gsm7():
    text = "Don’t “panic” — évacuez… now\u00a0please"
    assert sms_segments(text).encoding is Encoding.UCS2
    normal = normalise_gsm7(text)
    assert normal == 'Don\'t "panic" - évacuez... now please'
    assert sms_segments(normal).encoding is Encoding.GSM7


def test_normalisation_leaves_text_that_stays_ucs2_alone():
    text = "Banjir “besar” 🌊"
    assert normalise_gsm7(text) == text


def test_gsm7_text_is_untouched():
    assert normalise_gsm7("Harga 10€ [cek]") == "Harga 10€ [cek]"

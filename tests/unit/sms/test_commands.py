import pytest

from channels.sms import CommandKind, parse_command, reply_for, reply_text, reply_twiml, sms_segments
from channels.sms.commands import REPLIES

R, S, ST, H, REP = (
    CommandKind.REGISTER,
    CommandKind.STOP,
    CommandKind.START,
    CommandKind.HELP,
    CommandKind.REPORT,
)


@pytest.mark.parametrize(
    ("text", "kind", "argument", "language"),
    [
        ("DAFTAR Palu Barat", R, "Palu Barat", "id"),
        ("daftar   palu   barat ", R, "palu barat", "id"),
        ("Daftar: Palu Barat.", R, "Palu Barat", "id"),
        ("DAFTAR 72.71.01", R, "72.71.01", "id"),
        ("daftar7271011001", R, "7271011001", "id"),
        ("REG Sigi Biromaru", R, "Sigi Biromaru", "en"),
        ("#reg, Lere", R, "Lere", "en"),
        ("ＤＡＦＴＡＲ Lere", R, "Lere", "id"),  # full-width letters from some keyboards
        ("DAFTAR", R, "", "id"),
        ("BERHENTI", S, "", "id"),
        ("berhenti!", S, "", "id"),
        ("  Stop. ", S, "", "en"),
        ("UNSUBSCRIBE", S, "", "en"),
        ("stopall", S, "", "en"),
        ("MULAI", ST, "", "id"),
        ("start", ST, "", "en"),
        ("BANTUAN", H, "", "id"),
        ("help?", H, "", "en"),
        ("", H, "", "id"),
        ("  ...  ", H, "", "id"),
        ("LAPOR banjir 50 cm di RT 03", REP, "banjir 50 cm di RT 03", "id"),
        ("lapor: Air naik, jalan putus!", REP, "Air naik, jalan putus!", "id"),
        ("REPORT landslide near the school", REP, "landslide near the school", "en"),
        ("LAPOR", REP, "", "id"),
        ("Banjir di Jl. Sudirman setinggi lutut", REP, "Banjir di Jl. Sudirman setinggi lutut", "id"),
        ("stop banjir di jalan", REP, "stop banjir di jalan", "id"),  # STOP counts only alone, as at Twilio
        ("Laporan: pohon tumbang", REP, "Laporan: pohon tumbang", "id"),  # LAPORAN is not LAPOR
        ("Daftarkan saya", REP, "Daftarkan saya", "id"),
        ("🌊🌊 air masuk rumah", REP, "🌊🌊 air masuk rumah", "id"),
    ],
)
def test_parse_command(text, kind, argument, language):
    cmd = parse_command(text)
    assert (cmd.kind, cmd.argument, cmd.language) == (kind, argument, language)


def test_reply_for_commands_that_need_no_database():
    assert reply_for(parse_command("BANTUAN")) == "help"
    assert reply_for(parse_command("LAPOR")) == "report_empty"
    assert reply_for(parse_command("DAFTAR")) == "register_missing"
    assert reply_for(parse_command("DAFTAR Lere")) is None
    assert reply_for(parse_command("BERHENTI")) is None


@pytest.mark.parametrize("name", sorted(REPLIES))
def test_every_reply_is_indonesian_first_then_english_and_short(name):
    text = reply_text(
        name, area="Kelurahan Lere, Kecamatan Palu Barat, Kota Palu, Sulawesi Tengah", reference="R-1029"
    )
    indonesian, english = text.split(" / ")
    assert indonesian and english
    assert sms_segments(text).segments <= 2


def test_reply_twiml_escapes_citizen_text():
    xml = reply_twiml("register_unknown", area="<b>Desa & Co</b>")
    assert xml.startswith('<?xml version="1.0" encoding="UTF-8"?><Response><Message>')
    assert "&lt;b&gt;Desa &amp; Co&lt;/b&gt;" in xml


def test_no_reply_is_an_empty_response():
    assert reply_twiml(None).endswith("<Response />")


def test_unknown_reply_name_is_an_error():
    with pytest.raises(KeyError):
        reply_text("surprise")


def test_ya_alone_confirms_a_registration_request_and_in_a_sentence_is_a_report():
    for text in ("YA", "ya", " Ya! "):
        assert parse_command(text).kind is CommandKind.CONFIRM, text
    assert parse_command("ya banjir di sini").kind is CommandKind.REPORT

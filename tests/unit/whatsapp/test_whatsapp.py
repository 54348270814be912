"""The WhatsApp channel through the real twilio SDK against the local fake Twilio: templates, sends, failures,
reconciliation, cancel mid batch; and its inbound parsing."""

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from broadcast.dispatch.wiring import channel_config, channel_set
from broadcast.settings import Settings
from channels.base import AlertData, InfoData, OutboundMessage, Outcome, Recipient
from channels.outbox import Outbox
from channels.registry import ChannelConfigError, build_channel
from channels.whatsapp.inbound import parse_inbound, session_open, stored_form
from channels.whatsapp.render import WhatsAppRenderer
from channels.whatsapp.sender import TwilioWhatsApp
from channels.whatsapp.settings import WhatsAppConfig, WhatsAppSettings
from channels.whatsapp.templates import MAX_BODY, bodies, hazard_of, placeholders
from tests.fakes.twilio import FakeTwilio, query_of

FROM = "+6281100000000"
TO = "+6281234567890"
SIDS = {key: "HX" + f"{i:032x}" for i, key in enumerate(sorted(bodies()))}


def alert(status="Actual", event=("Banjir", "Flood"), description="Sungai Palu meluap setinggi 1 m.",
          instruction="Segera mengungsi ke Lapangan Vatulemo sekarang.", msg_type="Alert") -> AlertData:
    infos = (
        InfoData("id-ID", event[0], "Met", "Immediate", "Severe", "Likely", "Banjir di Kota Palu", description,
                 instruction),
        InfoData("en-US", event[1], "Met", "Immediate", "Severe", "Likely", "Flooding in Palu",
                 "River overflowing.", "Move to higher ground."),
    )
    return AlertData(1, "BCAST-1", "bpbd@x", status, msg_type, datetime(2026, 12, 7, tzinfo=UTC), None,
                     "Kota Palu", "http://127.0.0.1:8000/peringatan/1", infos, verify_code="7KQ2MX",
                     verify_url="http://127.0.0.1:8000/cek/7KQ2MX")


@pytest.fixture(params=["threaded", "asyncio"])
def fake(request):
    with FakeTwilio(server=request.param) as f:
        for key, sid in SIDS.items():
            f.add_content(sid, bodies()[key])
        yield f


def config(fake, **kw) -> WhatsAppConfig:
    values = dict(account_sid=fake.account_sid, auth_token=fake.auth_token, from_number=FROM,
                  content_sids=tuple(SIDS.items()), status_callback_url="https://bpbd.example.id/webhooks/twilio/status",
                  api_base_url=fake.url, max_concurrency=4)
    values.update(kw)
    return WhatsAppConfig(**values)


def channel(fake, *, timeout=5.0, **kw) -> TwilioWhatsApp:
    renderer = WhatsAppRenderer(SIDS)
    return TwilioWhatsApp(renderer, client=fake.client(timeout=timeout), config=config(fake, **kw))


def messages(ch, n=1, language="id", data=None):
    return ch.render(data or alert(), [Recipient(str(100 + i), f"+62812345{i:05d}", language) for i in range(n)])


# -- rendering -----------------------------------------------------------------------------------------------


def test_every_hazard_has_a_template_per_language_with_the_same_six_variables():
    keys = sorted(bodies())
    hazards = {k.split(".")[0] for k in keys}
    assert len(hazards) == 11 and all(f"{h}.{lang}" in keys for h in hazards for lang in ("id", "en"))
    for key in keys:
        body = bodies()[key]
        assert placeholders(key) == ["1", "2", "3", "4", "5", "6"], key
        assert not body.startswith("{{") and not body.rstrip().endswith("}}"), key  # WhatsApp refuses both
    assert hazard_of("Banjir") == hazard_of("flood") == "banjir"
    assert hazard_of("Gempa bumi") == "gempa_bumi" and hazard_of("Meteor") == "umum"


def test_render_fills_the_hazard_template_with_mark_action_code_and_link():
    [msg] = WhatsAppRenderer().render(alert("Exercise"), [Recipient("sub:1", TO, "id")])
    assert msg.template is not None and msg.template.key == "banjir.id"
    values = dict(msg.template.variables)
    assert values["1"] == "[LATIHAN] Banjir di Kota Palu"
    assert values["2"] == "Segera mengungsi ke Lapangan Vatulemo sekarang."
    assert values["3"] == "Kota Palu" and values["5"] == "7KQ2MX" and values["6"].endswith("/cek/7KQ2MX")
    assert msg.text.startswith("🌊 *PERINGATAN BANJIR*\n[LATIHAN] Banjir di Kota Palu\n")
    assert "*TINDAKAN:* Segera mengungsi ke Lapangan Vatulemo sekarang." in msg.text
    [english] = WhatsAppRenderer().render(alert("Exercise"), [Recipient("sub:2", TO, "en")])
    assert english.template.key == "banjir.en" and "[EXERCISE] Flooding in Palu" in english.text
    other = WhatsAppRenderer().render(alert(event=("Meteor", "Meteor")), [Recipient("sub:3", TO, "id")])[0]
    assert other.template.key == "umum.id"


def test_a_long_description_is_shortened_never_the_action_and_fits_1024():
    action = "Naik ke lantai dua sekarang, bawa obat, dokumen dan senter; jangan menyeberangi arus. " * 3
    long = alert(description="Air dan lumpur masuk ke rumah warga di sepanjang sungai.\n\t" * 60, instruction=action)
    [preview] = [p for p in WhatsAppRenderer(SIDS).preview(long) if p.language == "id-ID"]
    assert len(preview.text) <= MAX_BODY and preview.details["characters"] == len(preview.text)
    assert preview.details["fits"] and preview.details["shortened"]
    assert " ".join(action.split()) in preview.text  # the action whole
    variables = preview.details["variables"]
    assert variables["4"].endswith("…")
    assert all("\n" not in v and "\t" not in v and "     " not in v and v for v in variables.values())
    assert preview.details["content_sid"] == SIDS["banjir.id"] and preview.details["max_characters"] == 1024


def test_an_update_says_so_in_the_first_variable_and_empty_values_are_a_dash():
    data = replace(alert(msg_type="Update"), verify_code=None)
    [msg] = WhatsAppRenderer().render(data, [Recipient("sub:1", TO, "id")])
    values = dict(msg.template.variables)
    assert values["1"].startswith("PEMBARUAN: ") and values["5"] == "-"


def test_the_channel_set_renders_previews_exactly_as_the_fan_out_sends():
    settings = Settings(environment="test", twilio={"whatsapp": {"content_sids": SIDS, "from_number": FROM}})
    built = channel_set(settings)
    preview = built.renderers["whatsapp"].preview(alert())
    assert preview[0].details["content_sid"] == SIDS["banjir.id"]
    assert channel_config(settings, "whatsapp").status_callback_url.endswith("/webhooks/twilio/status")


# -- sending -------------------------------------------------------------------------------------------------


def test_send_posts_the_template_with_its_variables_and_the_fake_shows_the_preview_text(fake):
    ch = channel(fake)
    [msg] = messages(ch)
    sid = ch.send(msg)
    (req,) = fake.requests
    assert req.authorized and req.form["To"] == "whatsapp:+6281234500000" and req.form["From"] == f"whatsapp:{FROM}"
    assert req.form["ContentSid"] == SIDS["banjir.id"] and "Body" not in req.form
    assert json.loads(req.form["ContentVariables"]) == dict(msg.template.variables)
    assert query_of(req.form["StatusCallback"]) == {"delivery": ["100"]}
    [stored] = fake.messages
    assert stored["sid"] == sid and stored["body"] == msg.text  # what WhatsApp shows == the preview, byte for byte
    assert stored["body"] == WhatsAppRenderer(SIDS).preview(alert())[0].text


def test_a_messaging_service_sends_without_a_from_number(fake):
    ch = channel(fake, from_number="", messaging_service_sid="MG" + "a" * 32)
    ch.send(messages(ch)[0])
    form = fake.requests[0].form
    assert form["MessagingServiceSid"] == "MG" + "a" * 32 and "From" not in form


def test_429_and_5xx_are_retried_with_the_hint_and_a_timeout_is_in_doubt(fake):
    ch = channel(fake, max_concurrency=1)
    fake.fail_next(1, status=429, code=20429, retry_after="9")
    fake.fail_next(1, status=503)
    results = ch.send_many(messages(ch, 3))
    assert [r.outcome for r in results] == [Outcome.RETRY, Outcome.RETRY, Outcome.SENT]
    assert results[0].retry_after == 9.0 and not results[0].in_doubt
    assert not results[1].in_doubt
    slow = channel(fake, timeout=0.2)
    fake.fail_next(1, status=500, hang=1.0)
    [timed_out] = slow.send_many(messages(slow))
    assert timed_out.outcome is Outcome.RETRY and timed_out.in_doubt


def test_a_template_twilio_does_not_know_or_a_missing_sid_fails_for_good(fake):
    ch = channel(fake, content_sids=(("banjir.id", "HX" + "e" * 32),))
    [unknown] = ch.send_many(messages(ch))
    assert unknown.outcome is Outcome.FAILED and "21655" in unknown.error
    [missing] = ch.send_many(messages(ch, language="en"))
    assert missing.outcome is Outcome.FAILED and "banjir.en" in missing.error
    plain = OutboundMessage(TO, "free text", "7")
    [free] = ch.send_many([plain])
    assert free.outcome is Outcome.FAILED and "template" in free.error
    assert len([r for r in fake.requests if r.method == "POST"]) == 1  # only the unknown SID reached Twilio


def test_in_doubt_sends_are_reconciled_against_twilios_message_list(fake):
    ch = channel(fake)
    [msg, other] = messages(ch, 2)
    since = datetime.now(UTC) - timedelta(minutes=1)
    sid = ch.send(msg)
    assert ch.reconcile(msg, since=since) == sid  # Twilio holds it for whatsapp:+62…: recorded, not sent again
    assert ch.reconcile(other, since=since) is None  # never reached Twilio: sent again
    listed = [r for r in fake.requests if r.method == "GET"]
    assert listed and listed[0].query["To"].startswith("whatsapp:+62")
    fake.fail_next(1, status=500)
    assert ch.reconcile(msg, since=since) is None  # the list cannot be read: send again rather than miss


def test_cancel_mid_fan_out_stops_before_the_next_request(fake):
    ch = channel(fake, max_concurrency=1)
    asked = {"n": 0}

    def proceed():
        asked["n"] += 1
        return asked["n"] <= 3

    results = ch.send_many(messages(ch, 8), proceed=proceed)
    assert [r.outcome for r in results[:3]] == [Outcome.SENT] * 3
    assert all(r.stopped for r in results[3:])
    assert len([r for r in fake.requests if r.method == "POST"]) == 3


def test_buckets_are_the_account_shared_with_sms_the_sender_and_the_tier(fake):
    ch = channel(fake, sender_rate=10.0, tier=1000)
    buckets, cost = ch.rate_buckets(messages(ch)[0])
    assert [b.key for b in buckets] == [f"sms:account:{fake.account_sid}", f"whatsapp:sender:{FROM}"]
    assert cost == 1 and buckets[1].rate <= 10.0
    assert ch.retry_after_buckets(messages(ch)[0]) == buckets[:1]
    assert ch.recipient_cap is not None and ch.recipient_cap.limit == 1000 and ch.recipient_cap.window_s == 86400
    assert channel(fake, tier=None).recipient_cap is None


def test_live_needs_credentials_a_sender_and_every_content_sid(fake):
    with pytest.raises(ChannelConfigError, match="content SID"):
        build_channel("whatsapp", mode="live", public_base_url="https://x.id", config=config(fake, content_sids=()))
    with pytest.raises(ChannelConfigError, match="from_number"):
        build_channel("whatsapp", mode="live", public_base_url="https://x.id",
                      config=config(fake, from_number=""))
    assert isinstance(build_channel("whatsapp", mode="outbox", public_base_url="https://x.id"), Outbox)
    live = build_channel("whatsapp", mode="live", public_base_url="https://x.id", config=config(fake))
    assert isinstance(live, TwilioWhatsApp)


def test_settings_refuse_unknown_templates_and_bad_sids():
    with pytest.raises(ValueError, match="no template"):
        WhatsAppSettings(content_sids={"meteor.id": "HX" + "0" * 32})
    with pytest.raises(ValueError, match="HX"):
        WhatsAppSettings(content_sids={"banjir.id": "SM" + "0" * 32})
    assert WhatsAppSettings(from_number="whatsapp:+6281100000000").from_number == "+6281100000000"
    assert WhatsAppSettings().tier_limit == 250 and WhatsAppSettings(tier="unlimited").tier_limit is None


# -- inbound -------------------------------------------------------------------------------------------------


def test_inbound_text_location_and_photo():
    base = {"MessageSid": "SM1", "From": "whatsapp:+6281377712345", "To": f"whatsapp:{FROM}", "WaId": "6281377712345",
            "ProfileName": "Warga", "NumMedia": "0"}
    text = parse_inbound({**base, "Body": " LAPOR   banjir\n di pasar "})
    assert (text.sid, text.phone, text.text) == ("SM1", "+6281377712345", "LAPOR banjir di pasar")
    located = parse_inbound({**base, "Body": "", "Latitude": "-0.8917", "Longitude": "119.8707"})
    assert located.text == "daftar" and located.location == (119.8707, -0.8917)
    photo = parse_inbound({**base, "Body": "lapor pohon tumbang", "NumMedia": "1",
                           "MediaUrl0": "https://api.twilio.com/media/ME1", "MediaContentType0": "image/jpeg"})
    assert photo.media_url.endswith("ME1") and photo.text == "lapor pohon tumbang"
    assert parse_inbound({**base, "Body": "", "NumMedia": "1", "MediaUrl0": "https://x/ME2"}).text.startswith("lapor")
    assert parse_inbound({**base, "Body": "x", "Latitude": "nan", "Longitude": "1"}).location is None
    assert parse_inbound({**base, "Body": "x", "Latitude": "95", "Longitude": "1"}).location is None
    assert parse_inbound({**base, "From": "+6281377712345", "Body": "sms"}) is None  # not WhatsApp
    assert parse_inbound({**base, "Body": "x", "MessageStatus": "read"}) is None  # a status callback
    stored = stored_form({**base, "Body": "x"}, author="abc")
    assert stored["From"] == stored["WaId"] == stored["ProfileName"] == "hmac:abc" and stored["Body"] == "x"


def test_the_session_window_is_24_hours_from_the_last_message():
    now = datetime(2026, 12, 7, 12, tzinfo=UTC)
    assert session_open(now - timedelta(hours=23, minutes=59), now=now)
    assert not session_open(now - timedelta(hours=24), now=now)
    assert not session_open(None, now=now)
    assert session_open((now - timedelta(hours=1)).replace(tzinfo=None), now=now)  # naive UTC from SQLite

from datetime import UTC, datetime
from xml.etree import ElementTree as ET

import pytest

from channels.base import (
    AlertData,
    ChannelUnavailable,
    InfoData,
    MessageRejected,
    OutboundMessage,
    Outcome,
    Recipient,
    send_one_safely,
    status_mark,
)
from channels.outbox import Outbox
from channels.registry import ChannelConfigError, build_channel, build_channels
from channels.sms import SmsRenderer
from channels.social import XRenderer
from channels.web import WebRenderer, atom_feed


def make_alert(status: str = "Actual") -> AlertData:
    infos = (
        InfoData("id-ID", "Banjir", "Met", "Immediate", "Severe", "Likely", "Banjir di Kota Palu",
                 "Sungai meluap.", "Segera mengungsi."),
        InfoData("en-US", "Flood", "Met", "Immediate", "Severe", "Likely", "Flooding in Palu",
                 "River overflowing.", "Move to higher ground."),
    )
    return AlertData(
        id=1, identifier="BCAST-1", sender="bpbd@test", status=status, msg_type="Alert",
        sent=datetime(2026, 11, 26, 3, 0, tzinfo=UTC), expires=None, area_desc="Kota Palu",
        public_url="http://127.0.0.1:8000/peringatan/BCAST-1", infos=infos,
    )


RENDERERS = [SmsRenderer(), XRenderer(), WebRenderer()]


@pytest.mark.parametrize("renderer", RENDERERS, ids=lambda r: r.name)
@pytest.mark.parametrize(("status", "mark_id", "mark_en"), [
    ("Exercise", "LATIHAN", "EXERCISE"), ("Test", "TEST/UJI COBA", "TEST"),
])
def test_every_channel_marks_non_actual_messages(renderer, status, mark_id, mark_en):
    alert = make_alert(status)
    msgs = renderer.render(alert, [Recipient("sub:1", "+6281200000001", "id"),
                                   Recipient("sub:2", "+6281200000002", "en")])
    assert msgs[0].text.startswith(f"[{mark_id}] ")
    assert msgs[1].text.startswith(f"[{mark_en}] ")
    for preview in renderer.preview(alert):
        assert preview.text.startswith("[")


@pytest.mark.parametrize("renderer", RENDERERS, ids=lambda r: r.name)
def test_actual_messages_carry_no_exercise_mark(renderer):
    text = renderer.marked_text(make_alert("Actual"), "id")
    assert "LATIHAN" not in text and not text.startswith("[")


def test_sms_uses_the_subscriber_language_and_links_the_page():
    alert = make_alert()
    id_msg, en_msg = SmsRenderer().render(alert, [Recipient("a", "+1", "id"), Recipient("b", "+2", "en")])
    assert "Banjir di Kota Palu" in id_msg.text and "Segera mengungsi." in id_msg.text
    assert "Flooding in Palu" in en_msg.text
    assert alert.public_url in id_msg.text and alert.public_url in en_msg.text
    assert "\n" not in id_msg.text


def test_unknown_language_falls_back_to_first_info():
    assert make_alert().info_for("fr").language == "id-ID"


def test_status_mark_none_for_actual():
    assert status_mark("Actual", "id") is None


def test_outbox_sends_nothing_and_returns_local_id():
    ch = Outbox(SmsRenderer())
    results = ch.send_many([OutboundMessage("+62812", "hi", "42")])
    assert results[0].outcome is Outcome.SENT
    assert results[0].provider_id == "outbox-sms-42"


class Flaky(Outbox):
    def send(self, message):
        if message.reference == "bad":
            raise MessageRejected("invalid number")
        if message.reference == "later":
            raise ChannelUnavailable("429")
        if message.reference == "boom":
            raise RuntimeError("bug")
        return "ok"


def test_send_one_safely_maps_failures():
    ch = Flaky(SmsRenderer())
    outcomes = {r: send_one_safely(ch, OutboundMessage("x", "t", r)).outcome
                for r in ("good", "bad", "later", "boom")}
    assert outcomes == {"good": Outcome.SENT, "bad": Outcome.FAILED, "later": Outcome.RETRY,
                        "boom": Outcome.RETRY}


def test_registry_refuses_unknown_channel_and_live_without_adapter():
    with pytest.raises(ChannelConfigError):
        build_channel("pigeon", mode="outbox", public_base_url="http://x")
    with pytest.raises(ChannelConfigError):
        build_channel("sms", mode="live", public_base_url="http://x")
    chans = build_channels(["sms", "social", "web"], modes={}, public_base_url="http://x")
    assert {n: c.mode for n, c in chans.items()} == {"sms": "outbox", "social": "outbox", "web": "live"}


def test_atom_feed_is_well_formed_and_marks_exercises():
    body = atom_feed([make_alert("Exercise"), make_alert("Actual")], feed_url="http://x/feed",
                     title="t", updated=datetime(2026, 11, 26, tzinfo=UTC), site_url="http://x/")
    root = ET.fromstring(body)
    ns = {"a": "http://www.w3.org/2005/Atom"}
    titles = [e.findtext("a:title", namespaces=ns) for e in root.findall("a:entry", ns)]
    assert titles == ["[LATIHAN] Banjir di Kota Palu", "Banjir di Kota Palu"]
    links = {li.get("type"): li.get("href") for li in root.find("a:entry", ns).findall("a:link", ns)}
    assert links == {"application/cap+xml": "http://127.0.0.1:8000/cap/BCAST-1.xml",
                     "text/html": "http://127.0.0.1:8000/peringatan/BCAST-1"}


def test_base_send_many_stops_when_proceed_says_so():
    class Counting(Outbox):
        def __init__(self):
            super().__init__(SmsRenderer())
            self.sent = []

        def send(self, message):
            self.sent.append(message.reference)
            return message.reference

    ch = Counting()
    answers = iter([True, True, False])
    results = ch.send_many([OutboundMessage("x", "t", str(i)) for i in range(5)], proceed=lambda: next(answers))
    assert ch.sent == ["0", "1"]
    assert [r.stopped for r in results] == [False, False, True, True, True]


def test_atom_timestamps_are_whole_seconds():
    # Microseconds in <updated> ("19:03:03.130308") read like a phone number to a scanner, and CAP uses whole seconds.
    body = atom_feed(
        [make_alert("Exercise")],
        feed_url="http://x/feed",
        title="t",
        updated=datetime(2026, 11, 26, 19, 3, 3, 130308, tzinfo=UTC),
        site_url="http://x/",
    )
    root = ET.fromstring(body)
    ns = {"a": "http://www.w3.org/2005/Atom"}
    assert root.find("a:updated", ns).text == "2026-11-26T19:03:03+00:00"
    assert "." not in root.find("a:entry/a:updated", ns).text

"""The Telegram channels through python-telegram-bot's real Bot against the local fake Bot API."""

import re
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from broadcast.dispatch.wiring import channel_config, channel_set
from broadcast.settings import Settings
from channels.base import AlertData, InfoData, OutboundMessage, Outcome, Recipient
from channels.outbox import Outbox
from channels.telegram.render import TelegramChannelRenderer, TelegramRenderer
from channels.telegram.sender import TelegramBot
from channels.telegram.settings import MAX_TEXT, TelegramConfig
from tests.fakes.telegram import FakeTelegram

TOKEN = "123456:TEST-TOKEN"


def alert(status="Actual", description="Sungai Palu meluap setinggi 1 m.", instruction="Segera mengungsi ke <Lapangan Vatulemo> & tunggu.") -> AlertData:
    infos = (
        InfoData("id-ID", "Banjir", "Met", "Immediate", "Severe", "Likely", "Banjir di Kota Palu", description,
                 instruction),
        InfoData("en-US", "Flood", "Met", "Immediate", "Severe", "Likely", "Flooding in Palu", "River overflowing.",
                 "Move to higher ground."),
    )
    return AlertData(1, "BCAST-1", "bpbd@x", status, "Alert", datetime(2026, 12, 7, tzinfo=UTC), None,
                     "Kota Palu", "http://127.0.0.1:8000/peringatan/1", infos, verify_code="7KQ2MX",
                     verify_url="http://127.0.0.1:8000/cek")


@pytest.fixture
def fake():
    with FakeTelegram(TOKEN) as f:
        yield f


def bot(fake, **kw) -> TelegramBot:
    return TelegramBot(TelegramRenderer(), config=TelegramConfig(bot_token=TOKEN, api_base_url=fake.base_url,
                                                                 channel_chat_id="@bpbdpalu", **kw))


def msg(ref="1", chat="4242", text="<b>Uji</b>") -> OutboundMessage:
    return OutboundMessage(chat, text, ref)


def test_render_escapes_html_keeps_the_action_and_marks_exercises():
    text = TelegramRenderer().marked_text(alert("Exercise"), "id-ID")
    assert text.startswith("<b>[LATIHAN] Banjir di Kota Palu</b>")
    assert "Segera mengungsi ke &lt;Lapangan Vatulemo&gt; &amp; tunggu." in text
    assert "<code>7KQ2MX</code>" in text and "http://127.0.0.1:8000/peringatan/1" in text
    english = TelegramRenderer().marked_text(alert("Exercise"), "en")
    assert english.startswith("<b>[EXERCISE] Flooding in Palu</b>") and "Move to higher ground." in english


def test_a_long_description_is_cut_never_the_action_and_fits_4096():
    long = alert(description="air & lumpur " * 900, instruction="Naik ke lantai dua <sekarang> & bawa obat.")
    text = TelegramRenderer().marked_text(long, "id")
    assert len(text) <= MAX_TEXT
    assert "Naik ke lantai dua &lt;sekarang&gt; &amp; bawa obat." in text and "…" in text
    assert not re.search(r"&(?!amp;|lt;|gt;|quot;|#x27;)", text)  # no entity cut in half


def test_previews_render_the_same_text_as_sent(fake):
    data = alert()
    renderer = TelegramRenderer()
    [preview] = [p for p in renderer.preview(data) if p.language == "id-ID"]
    [out] = renderer.render(data, [Recipient("sub:1", "4242", "id-ID")])
    assert preview.text == out.text
    [result] = bot(fake).send_many([out])
    assert result.outcome is Outcome.SENT and fake.sent[0]["text"] == out.text
    assert fake.sent[0]["parse_mode"] == "HTML" and fake.sent[0]["chat_id"] == "4242"


def test_channel_post_goes_to_the_agency_channel_whatever_the_recipient(fake):
    channel = TelegramBot(TelegramChannelRenderer(), config=TelegramConfig(
        bot_token=TOKEN, api_base_url=fake.base_url, channel_chat_id="@bpbdpalu"), channel_post=True)
    [result] = channel.send_many([msg(chat="http://127.0.0.1:8000/peringatan/1")])
    assert result.outcome is Outcome.SENT and fake.sent[0]["chat_id"] == "@bpbdpalu"
    buckets, cost = channel.rate_buckets(msg())
    assert cost == 1 and [b.key for b in buckets] == ["telegram:bot", "telegram:group:@bpbdpalu"]
    assert buckets[1].rate == pytest.approx(20 / 60)


def test_buckets_hold_the_bot_and_each_chat_within_telegrams_limits(fake):
    buckets, _ = bot(fake).rate_buckets(msg(chat="77"))
    assert [b.key for b in buckets] == ["telegram:bot", "telegram:chat:77"]
    bot_bucket, chat_bucket = buckets
    assert bot_bucket.burst + bot_bucket.rate * 1.15 <= 30 + 1 and chat_bucket.burst + chat_bucket.rate <= 2


def test_429_is_retry_with_telegrams_retry_after(fake):
    fake.fail_next(1, status=429)
    first, second = bot(fake).send_many([msg("1"), msg("2", chat="43")])
    assert first.outcome is Outcome.RETRY and first.retry_after == 3.0
    assert second.outcome is Outcome.SENT


def test_a_second_message_to_one_chat_within_a_second_is_refused_by_the_fake(fake):
    first, second = bot(fake).send_many([msg("1"), msg("2")])
    assert first.outcome is Outcome.SENT and second.outcome is Outcome.RETRY and second.retry_after == 1.0
    assert fake.limited == 1


def test_5xx_is_retry_and_a_blocked_user_is_failed(fake):
    fake.fail_next(1, status=502)
    fake.block_chat(99)
    unavailable, blocked = bot(fake).send_many([msg("1"), msg("2", chat="99")])
    assert unavailable.outcome is Outcome.RETRY and not unavailable.in_doubt
    assert blocked.outcome is Outcome.FAILED and "Forbidden" in (blocked.error or "")


def test_a_timeout_is_retry_in_doubt(fake):
    fake.hang_next(1, seconds=1.5)
    [result] = bot(fake, timeout_s=0.3).send_many([msg()])
    assert result.outcome is Outcome.RETRY and result.in_doubt


def test_cancel_mid_fanout_stops_before_the_next_message(fake):
    asked = []

    def proceed():
        asked.append(1)
        return len(asked) <= 2

    results = bot(fake).send_many([msg(str(i), chat=str(100 + i)) for i in range(5)], proceed=proceed)
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT] + [Outcome.RETRY] * 3
    assert all(r.stopped for r in results[2:]) and len(fake.sent) == 2


def test_outbox_outside_production_and_live_only_in_production_with_a_token(fake):
    tg = {"bot_token": TOKEN, "channel_chat_id": "@bpbdpalu"}
    enabled = ["sms", "telegram", "telegram_channel", "web"]
    staging = channel_set(Settings(environment="staging", enabled_channels=enabled, telegram=tg))
    assert isinstance(staging.senders["telegram"], Outbox) and isinstance(staging.senders["telegram_channel"], Outbox)
    prod = Settings(environment="production", database_url="sqlite:///x.db", broker_url="redis://127.0.0.1:6379/6",
                    secret_key="a-real-production-secret-42", enabled_channels=enabled, telegram=tg)
    config = replace(channel_config(prod, "telegram"), api_base_url=fake.base_url)
    live = channel_set(prod, configs={"telegram": config, "telegram_channel": config})
    assert isinstance(live.senders["telegram"], TelegramBot) and live.senders["telegram_channel"].mode == "live"
    assert live.senders["telegram"].send(msg()).startswith("4242:")

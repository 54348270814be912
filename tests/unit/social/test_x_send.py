"""XPost with the real tweepy SDK against the local fake X API (never a mocked SDK method)."""

from dataclasses import replace

import pytest

from channels.base import ChannelUnavailable, MessageRejected, OutboundMessage, Outcome, Recipient
from channels.registry import ChannelConfigError, build_channel, build_channels
from channels.social import DuplicatePost, RateLimited, XConfig, XPost, XRenderer
from tests.unit.social.conftest import PALU, PNG, SULTENG, connect, make_alert, with_instructions
from tests.unit.social.test_x_render import LONG_ID

NOW = 1_800_000_000
# tweepy 4.17 sniffs image types with imghdr, deprecated in Python 3.11; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:'imghdr' is deprecated:DeprecationWarning")


def public(alert):
    return [Recipient("public", alert.public_url, "id-ID")]


def test_thread_is_posted_in_order_each_replying_to_the_previous(fake, channel):
    alert = with_instructions(make_alert("Exercise"), LONG_ID, "Move to higher ground now.")
    messages = channel.render(alert, public(alert))
    (result,) = channel.send_many(messages)
    posts = fake.posts()
    texts = [messages[0].text, *messages[0].thread]
    assert [p.json()["text"] for p in posts] == texts
    assert result.outcome is Outcome.SENT
    ids = [result.provider_id, *result.extra_provider_ids]
    assert len(ids) == len(texts) and result.error is None
    assert "reply" not in posts[0].json()
    for previous, post in zip(ids, posts[1:], strict=False):
        assert post.json()["reply"] == {"in_reply_to_tweet_id": previous}
    assert posts[-1].json()["text"].startswith("[EXERCISE] ")


def test_alert_posts_from_the_account_of_its_area(fake, channel):
    palu = make_alert(area_codes=("72.71.01",))
    donggala = make_alert(identifier="B2", area_codes=("72.03",), public_url="https://p.bpbd.go.id/B2")
    ((palu_msg,), (donggala_msg,)) = (
        channel.render(palu, public(palu)),
        channel.render(donggala, public(donggala)),
    )
    assert (palu_msg.sender, donggala_msg.sender) == ("bpbdpalu", "bpbdsulteng")
    first_palu = channel.send(palu_msg)
    first_donggala = channel.send(donggala_msg)
    assert fake.tweets[first_palu]["author"] == "tok-palu"
    assert fake.tweets[first_donggala]["author"] == "tok-sulteng"


def test_map_image_is_uploaded_with_alt_text_and_attached_to_the_first_post(fake, channel):
    alert = make_alert(map_png=PNG)
    (result,) = channel.send_many(channel.render(alert, public(alert)))
    (media_id,) = fake.media
    assert fake.media[media_id] == PNG
    assert fake.alt_texts[media_id].startswith("Peta wilayah peringatan banjir: Kota Palu")
    assert fake.tweets[result.provider_id]["media_ids"] == [media_id]
    assert fake.tweets[result.extra_provider_ids[0]]["media_ids"] == []


def test_refused_image_does_not_hold_back_the_warning(fake, channel):
    fake.fail_next("POST", "/1.1/media/upload.json", 400, {"errors": [{"code": 324, "message": "bad media"}]})
    alert = make_alert(map_png=PNG)
    (result,) = channel.send_many(channel.render(alert, public(alert)))
    assert result.outcome is Outcome.SENT and fake.tweets[result.provider_id]["media_ids"] == []


def test_upload_outage_retries_before_anything_is_posted(fake, channel):
    fake.fail_next("POST", "/1.1/media/upload.json", 503)
    alert = make_alert(map_png=PNG)
    (result,) = channel.send_many(channel.render(alert, public(alert)))
    assert result.outcome is Outcome.RETRY and fake.posts() == []


@pytest.mark.parametrize(("msg_type", "label"), [("Update", "PEMBARUAN: "), ("Cancel", "DIBATALKAN: ")])
def test_update_and_cancel_reply_to_the_original_post(fake, channel, msg_type, label):
    (original,) = channel.send_many(channel.render(make_alert(), public(make_alert())))
    update = make_alert(
        msg_type=msg_type, identifier="B2", original_provider_ids={"social": original.provider_id}
    )
    (result,) = channel.send_many(channel.render(update, public(update)))
    body = fake.posts()[2].json()
    assert body["reply"] == {"in_reply_to_tweet_id": original.provider_id} and "quote_tweet_id" not in body
    assert body["text"].startswith(label)
    assert fake.tweets[result.extra_provider_ids[0]]["reply_to"] == result.provider_id


def test_correction_replies_to_and_links_the_original(fake, channel):
    (original,) = channel.send_many(channel.render(make_alert(), public(make_alert())))
    fix = make_alert(
        msg_type="Error", identifier="B3", original_provider_ids={"social": original.provider_id}
    )
    channel.send_many(channel.render(fix, public(fix)))
    body = fake.posts()[2].json()
    assert body["reply"] == {"in_reply_to_tweet_id": original.provider_id}
    assert f"https://x.com/i/web/status/{original.provider_id}" in body["text"]


def test_429_is_unavailable_with_seconds_until_reset_and_stops_the_batch(fake, channel):
    fake.rate_limit_next("POST", "/2/tweets", reset=NOW + 120)
    a, b = make_alert(), make_alert(identifier="B2", public_url="https://peringatan.bpbd.go.id/p/B2")
    messages = channel.render(a, public(a)) + [
        replace(m, reference="p2") for m in channel.render(b, public(b))
    ]
    results = channel.send_many(messages)
    assert [r.outcome for r in results] == [Outcome.RETRY, Outcome.RETRY]
    assert [r.retry_after for r in results] == [120.0, 120.0]
    assert len([r for r in fake.requests if r.path == "/2/tweets"]) == 1
    with pytest.raises(RateLimited) as info:
        fake.rate_limit_next("POST", "/2/tweets", reset=NOW - 5)
        channel.send(messages[0])
    assert isinstance(info.value, ChannelUnavailable) and info.value.retry_after == 1.0


def test_429_without_reset_header_has_no_retry_after(fake, channel):
    fake.rate_limit_next("POST", "/2/tweets", reset=None)
    with pytest.raises(RateLimited) as info:
        channel.send(channel.render(make_alert(), public(make_alert()))[0])
    assert info.value.retry_after is None


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_unavailable(fake, channel, status):
    fake.fail_next("POST", "/2/tweets", status)
    with pytest.raises(ChannelUnavailable):
        channel.send(channel.render(make_alert(), public(make_alert()))[0])


def test_timeout_is_unavailable(fake):
    quick = XPost(XRenderer(), [connect(fake, PALU, timeout_s=0.2)])
    fake.fail_next("POST", "/2/tweets", 201, {}, delay_s=1.0)
    with pytest.raises(ChannelUnavailable, match="unreachable"):
        quick.send(quick.render(make_alert(), public(make_alert()))[0])


def test_unreachable_server_is_unavailable(fake):
    conn = connect(fake, PALU)
    fake.stop()
    with pytest.raises(ChannelUnavailable):
        XPost(XRenderer(), [conn]).send(OutboundMessage("", "hi", "r1"))


@pytest.mark.parametrize(
    ("status", "body", "text"),
    [
        (
            400,
            {"errors": [{"message": "Invalid Request: text too long"}], "title": "Invalid Request"},
            "too long",
        ),
        (401, {"title": "Unauthorized", "detail": "Unauthorized", "status": 401}, "Unauthorized"),
        (
            403,
            {"title": "Forbidden", "detail": "You are not permitted to perform this action."},
            "not permitted",
        ),
        (
            404,
            {"title": "Not Found Error", "detail": "Could not find tweet with quote_tweet_id."},
            "Could not find",
        ),
    ],
)
def test_client_errors_are_rejected_with_x_message(fake, channel, status, body, text):
    fake.fail_next("POST", "/2/tweets", status, body)
    (result,) = channel.send_many(channel.render(make_alert(), public(make_alert())))
    assert result.outcome is Outcome.FAILED
    assert result.error.startswith(f"x {status}: ") and text in result.error


def test_duplicate_content_is_rejected_as_duplicate(fake, channel):
    message = channel.render(make_alert(), public(make_alert()))[0]
    channel.send(message)
    with pytest.raises(DuplicatePost, match="duplicate content") as info:
        channel.send(message)
    assert isinstance(info.value, MessageRejected)


def test_thread_cut_short_after_the_first_post_counts_as_sent_with_the_error(fake, channel):
    alert = with_instructions(make_alert(), LONG_ID, "Go.")
    message = channel.render(alert, public(alert))[0]
    fake.fail_next("POST", "/2/tweets", 503, after=2, times=10)
    (result,) = channel.send_many([message])
    assert result.outcome is Outcome.SENT
    assert len([result.provider_id, *result.extra_provider_ids]) == 2
    assert result.error.startswith(f"thread stopped after 2 of {1 + len(message.thread)} posts")
    # send() reports the first id too: the alert is public, so the delivery must not be retried.
    fake.tweets.clear()
    fake.failures.clear()
    fake.fail_next("POST", "/2/tweets", 503, after=1, times=10)
    assert channel.send(message) in fake.tweets


def test_message_for_an_unconfigured_account_is_rejected(fake, channel):
    with pytest.raises(MessageRejected, match="no X account"):
        channel.send(OutboundMessage("", "hi", "r1", sender="bpbdjakarta"))
    alert = make_alert(area_codes=("31.71",))
    (message,) = channel.render(alert, public(alert))
    assert message.sender == ""
    (result,) = channel.send_many([message])
    assert result.outcome is Outcome.FAILED


def test_registry_builds_the_live_x_channel_only_with_config():
    config = XConfig("ck", "cs", (PALU, SULTENG))
    live = build_channel("social", mode="live", public_base_url="http://x", config=config)
    assert isinstance(live, XPost) and live.name == "social" and live.mode == "live"
    assert [a.handle for a in live.accounts] == ["bpbdpalu", "bpbdsulteng"]
    assert (
        build_channel("social", mode="outbox", public_base_url="http://x", config=config).mode == "outbox"
    )
    chans = build_channels(["sms", "social"], modes={}, public_base_url="http://x", configs={"social": config})
    assert {n: c.mode for n, c in chans.items()} == {"sms": "outbox", "social": "outbox"}
    with pytest.raises(ChannelConfigError):
        build_channel("social", mode="live", public_base_url="http://x")
    with pytest.raises(ChannelConfigError, match="without access tokens"):
        bad = XConfig("ck", "cs", (PALU.__class__("72", "nokeys"),))
        build_channel("social", mode="live", public_base_url="http://x", config=bad)
    with pytest.raises(ChannelConfigError):
        build_channel("sms", mode="live", public_base_url="http://x", config=config)

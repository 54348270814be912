"""Mentions polling with the real tweepy Client against the fake X API."""

import pytest
import tweepy

from channels.base import ChannelUnavailable
from channels.social import RateLimited, poll_mentions
from tests.unit.social.conftest import PALU, connect

USER = "4271"


@pytest.fixture
def client(fake) -> tweepy.Client:
    fake.add_user("901", "warga_palu", "Warga Palu")
    return connect(fake, PALU).client


def mention_requests(fake):
    return [r for r in fake.requests if r.path == f"/2/users/{USER}/mentions"]


def test_no_mentions_keeps_since_id(fake, client):
    assert poll_mentions(client, USER, None).events == ()
    poll = poll_mentions(client, USER, "1800000000000000500")
    assert poll.events == () and poll.since_id == "1800000000000000500"


def test_mentions_become_inbound_events_oldest_first(fake, client):
    first = fake.add_mention(USER, "@bpbdpalu LAPOR banjir di Lere", author_id="901")
    second = fake.add_mention(USER, "@bpbdpalu air naik", author_id="902")  # author not expanded
    poll = poll_mentions(client, USER, None)
    assert [e.external_id for e in poll.events] == [first, second]
    event = poll.events[0]
    assert (event.source, event.sender, event.text) == ("x", "@warga_palu", "@bpbdpalu LAPOR banjir di Lere")
    assert event.raw["tweet"]["author_id"] == "901" and event.raw["author"]["username"] == "warga_palu"
    assert poll.events[1].sender == "902" and poll.events[1].raw["author"] is None
    assert poll.since_id == second


def test_pagination_follows_tokens_and_since_id_moves_to_the_newest(fake, client):
    ids = [fake.add_mention(USER, f"@bpbdpalu laporan {n}", author_id="901") for n in range(12)]
    poll = poll_mentions(client, USER, None, page_size=5)
    assert [e.external_id for e in poll.events] == ids
    assert poll.since_id == ids[-1]
    requests = mention_requests(fake)
    assert len(requests) == 3
    assert "pagination_token" not in requests[0].query
    assert [r.query["pagination_token"] for r in requests[1:]] == [["page-5"], ["page-10"]]
    assert all(r.query["max_results"] == ["5"] for r in requests)

    later = fake.add_mention(USER, "@bpbdpalu baru", author_id="901")
    again = poll_mentions(client, USER, poll.since_id, page_size=5)
    assert [e.external_id for e in again.events] == [later]
    assert mention_requests(fake)[-1].query["since_id"] == [ids[-1]]


def test_a_failed_page_raises_so_nothing_is_skipped(fake, client):
    for n in range(6):
        fake.add_mention(USER, f"@bpbdpalu {n}", author_id="901")
    fake.rate_limit_next("GET", f"/2/users/{USER}/mentions", reset=None)
    fake.requests.clear()
    with pytest.raises(RateLimited):
        poll_mentions(client, USER, None, page_size=5)
    fake.fail_next("GET", f"/2/users/{USER}/mentions", 503, after=1)
    with pytest.raises(ChannelUnavailable):
        poll_mentions(client, USER, None, page_size=5)
    assert len(poll_mentions(client, USER, None, page_size=5).events) == 6


def test_max_pages_bounds_a_poll(fake, client):
    for n in range(12):
        fake.add_mention(USER, f"@bpbdpalu {n}", author_id="901")
    poll = poll_mentions(client, USER, None, page_size=5, max_pages=2)
    assert len(poll.events) == 10 and len(mention_requests(fake)) == 2

"""Fixtures for the X channel: alert data, a running fake X API and real tweepy clients pointed at it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import tweepy

from channels.base import AlertData, InfoData
from channels.social import XAccount, XConnection, XPost, XRenderer
from tests.fakes.x_api import FakeX

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
)
PALU = XAccount("72.71", "bpbdpalu", "4271", "tok-palu", "sec-palu")
SULTENG = XAccount("72", "bpbdsulteng", "4272", "tok-sulteng", "sec-sulteng")


def make_alert(status: str = "Actual", **changes: object) -> AlertData:
    """A flood alert for Kota Palu in Indonesian and English."""
    infos = (
        InfoData(
            "id-ID",
            "Banjir",
            "Met",
            "Immediate",
            "Severe",
            "Likely",
            "Banjir di Kota Palu",
            "Sungai Palu meluap.",
            "Segera mengungsi ke tempat yang lebih tinggi.",
        ),
        InfoData(
            "en-US",
            "Flood",
            "Met",
            "Immediate",
            "Severe",
            "Likely",
            "Flooding in Palu",
            "The Palu river is overflowing.",
            "Move to higher ground now.",
        ),
    )
    alert = AlertData(
        id=1,
        identifier="BCAST-1",
        sender="bpbd@test",
        status=status,
        msg_type="Alert",
        sent=datetime(2026, 11, 26, 3, 0, tzinfo=UTC),
        expires=None,
        area_desc="Kota Palu",
        public_url="https://peringatan.bpbd.go.id/peringatan/BCAST-1",
        infos=infos,
        area_codes=("72.71",),
    )
    return dataclasses.replace(alert, **changes)


def with_instructions(alert: AlertData, id_text: str, en_text: str) -> AlertData:
    """The alert with other instructions per language."""
    infos = (
        dataclasses.replace(alert.infos[0], instruction=id_text),
        dataclasses.replace(alert.infos[1], instruction=en_text),
    )
    return dataclasses.replace(alert, infos=infos)


@pytest.fixture
def fake() -> Iterator[FakeX]:
    """A fake X API on 127.0.0.1, on a port the OS picked."""
    with FakeX() as server:
        yield server


def connect(fake: FakeX, account: XAccount, *, timeout_s: float = 5.0, with_api: bool = True) -> XConnection:
    """Real tweepy clients acting as `account`, talking to the fake."""
    client = tweepy.Client(
        consumer_key="ck",
        consumer_secret="cs",
        access_token=account.access_token,
        access_token_secret=account.access_token_secret,
    )
    api = tweepy.API(tweepy.OAuth1UserHandler("ck", "cs", account.access_token, account.access_token_secret))
    fake.attach(client, api, timeout_s=timeout_s)
    return XConnection(account, client, api if with_api else None)


@pytest.fixture
def channel(fake: FakeX) -> XPost:
    """The X channel with a Kota Palu and a Sulawesi Tengah account, at a fixed clock."""
    return XPost(XRenderer(), [connect(fake, SULTENG), connect(fake, PALU)], clock=lambda: 1_800_000_000.0)

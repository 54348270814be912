from collections.abc import Iterator

import pytest

from tests.fakes.twilio import FakeTwilio


@pytest.fixture(autouse=True)
def _no_twilio_region(monkeypatch: pytest.MonkeyPatch) -> None:
    # TWILIO_REGION/TWILIO_EDGE rewrite the SDK's host and would bypass the local fake (REFERENCE §1).
    monkeypatch.delenv("TWILIO_REGION", raising=False)
    monkeypatch.delenv("TWILIO_EDGE", raising=False)


@pytest.fixture(params=["threaded", "asyncio"])
def fake_twilio(request: pytest.FixtureRequest) -> Iterator[FakeTwilio]:
    # Both servers of the fake (the benchmark uses the asyncio one) must answer alike.
    with FakeTwilio(server=request.param) as fake:
        yield fake

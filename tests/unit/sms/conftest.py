from collections.abc import Iterator

import pytest

from tests.fakes.twilio import FakeTwilio


@pytest.fixture(params=["threaded", "asyncio"])
def fake_twilio(request: pytest.FixtureRequest) -> Iterator[FakeTwilio]:
    # Both servers of the fake (the benchmark uses the asyncio one) must answer alike.
    with FakeTwilio(server=request.param) as fake:
        yield fake

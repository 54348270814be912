import pytest

from broadcast.dispatch.planning import backoff, batches, lead_batches
from broadcast.worker import VISIBILITY_TIMEOUT_S
from geo import gazetteer


def test_known_codes_and_names():
    assert gazetteer.find_place("72.71").nama == "Kota Palu"
    assert gazetteer.find_place("33.15").level == "kabupaten_kota"
    assert gazetteer.find_place("99.99") is None


@pytest.mark.parametrize(("code", "ok"), [("72", True), ("72.71", True), ("72.71.01", True),
                                          ("72.71.01.1004", True), ("7271", False), ("72.7", False),
                                          ("72.71.01.100", False), ("", False), ("72.71;DROP", False)])
def test_code_shape(code, ok):
    assert gazetteer.is_well_formed(code) is ok


def test_contains_respects_code_boundaries():
    assert gazetteer.contains("72", "72.71.01.1004")
    assert gazetteer.contains("72.71", "72.71")
    assert not gazetteer.contains("33.1", "33.15")
    assert not gazetteer.contains("72.71", "72.03.04.2001")


def test_batches_cover_everything_once():
    ids = list(range(1, 451))
    chunks = list(batches(ids, 200))
    assert [len(c) for c in chunks] == [200, 200, 50]
    assert sum(chunks, []) == ids
    with pytest.raises(ValueError):
        list(batches(ids, 0))


def test_a_fan_outs_first_batches_are_small_then_full_size():
    ids = list(range(1, 1251))
    chunks = list(lead_batches(ids, 500, lead=True))
    assert [len(c) for c in chunks] == [100, 100, 100, 100, 100, 500, 250]
    assert sum(chunks, []) == ids
    assert [len(c) for c in lead_batches(ids, 500, lead=False)] == [500, 500, 250]
    assert [len(c) for c in lead_batches(ids[:80], 500, lead=True)] == [80]


def test_backoff_grows_and_stays_under_visibility_timeout():
    delays = [backoff(n) for n in range(12)]
    assert delays == sorted(delays)
    assert max(delays) < VISIBILITY_TIMEOUT_S / 10


@pytest.mark.parametrize(
    ("msg_type", "severity", "urgency", "queue"),
    [
        ("Cancel", "Minor", "Past", "critical"),
        ("Update", "Moderate", "Expected", "critical"),
        ("Alert", "Extreme", "Immediate", "critical"),
        ("Alert", "Extreme", "Expected", "broadcast"),
        ("Alert", "Severe", "Immediate", "broadcast"),
    ],
)
def test_cancels_updates_and_extreme_immediate_warnings_jump_the_queue(msg_type, severity, urgency, queue):
    from broadcast.dispatch.planning import queue_for

    assert queue_for(msg_type=msg_type, severity=severity, urgency=urgency) == queue


def test_retry_delays_are_jittered_upwards_only():
    from broadcast.dispatch.planning import jittered

    assert jittered(8.0, rng=lambda: 0.0) == 8.0
    assert jittered(8.0, rng=lambda: 1.0) == 10.0
    spread = {round(jittered(8.0), 6) for _ in range(50)}
    assert len(spread) > 1 and all(8.0 <= d <= 10.0 for d in spread)

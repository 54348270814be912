"""Report text that would make the geoparser work for minutes (issue 24): the work is bounded, not the clock.

Each hostile text runs under a budget of gazetteer code comparisons (the old parser's inner operation: it
compared every pair of candidates of every pair of mentions) and must stay within the parser's work caps, with
the cap named in the reason when one is hit. No wall time is asserted.
"""

import pytest

from geo import gazetteer, geoparse

MAX_TEXT = 4000  # the API and /lapor maximum
SMS_TEXT = 160 * 10  # "sidomulyo " * 160: an SMS's worth of repeats (concatenated SMS)


class _Budget:
    def __init__(self, limit: int) -> None:
        self.calls = 0
        self.limit = limit
        self.real = gazetteer.contains

    def __call__(self, outer: str, inner: str) -> bool:
        self.calls += 1
        if self.calls > self.limit:
            raise AssertionError(f"more than {self.limit} code comparisons for one report")
        return self.real(outer, inner)


def _distinct_names() -> str:
    text = "banjir di "
    for place in gazetteer.places_at("kecamatan"):
        if len(text) + len(place.nama) + 2 > MAX_TEXT:
            break
        text += place.nama + ", "
    return text


HOSTILE = {
    "a name of 99 places repeated 160 times (SMS maximum)": lambda: "banjir " + "sidomulyo " * 160,
    "a name of 99 places repeated 400 times (API and /lapor maximum)": lambda: "banjir " + "sidomulyo " * 399,
    "4,000 characters of distinct kecamatan names": _distinct_names,
    "4,000 characters of misspelt names after kel": lambda: "".join(f"kel sidomulyx{i} " for i in range(220)),
    "repeated names within a region (within=33)": lambda: "banjir di " + "sidomulyo, sidorejo, " * 180,
}


@pytest.mark.parametrize("attack", list(HOSTILE))
def test_hostile_report_text_costs_bounded_work(attack, monkeypatch, record):
    text = HOSTILE[attack]()[:MAX_TEXT]
    within = "33" if "within" in attack else None
    geoparse.parse_location("banjir sidomulyo", within=within)  # indexes loaded outside the budget
    budget = _Budget(20_000)
    monkeypatch.setattr(gazetteer, "contains", budget)
    try:
        found = geoparse.parse_location(text, within=within, registered="72.71", jurisdiction="72")
    except AssertionError as exc:
        record("hostile report text (geoparser)", attack, str(exc), ok=False)
        raise
    bounded = found.work <= geoparse.MAX_WORK + geoparse.MAX_MENTIONS * geoparse.MAX_CANDIDATES
    explained = (not found.capped) or "cap" in found.reason
    ok = bounded and explained
    record(
        "hostile report text (geoparser)",
        attack,
        f"{found.work} candidate evaluations, {budget.calls} code comparisons"
        + (", work cap named in the reason" if found.capped else ""),
        ok=ok,
    )
    assert ok, (found.work, found.reason)

"""SubscriberArrays' match (a union of positions by mask or sort, no np.unique) and per-channel counts give the
rule's answer, checked one subscriber at a time against geo.targeting.brute_force_match and the code-prefix rule."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from broadcast.subscribers import targeting
from geo import boundaries
from geo.targeting import brute_force_match

PALU_DESA = [c for c, _ in boundaries.descendants("72.71", "desa_kelurahan")[:10]]
CODES = np.array([*PALU_DESA, "72.71", "72.71.01", "72.03", "72.03.04", "33.15", ""], dtype="U13")
TARGETS = [
    targeting.TargetSpec(("72.71",), None),
    targeting.TargetSpec(("72.03", "72.71.01"), None),
    targeting.TargetSpec((), shapely.box(119.80, -0.95, 119.90, -0.85)),
    targeting.TargetSpec(("72.71.01",), shapely.Point(119.87, -0.90).buffer(0.03)),
    targeting.TargetSpec(("72.71", "72.71"), shapely.box(119.70, -1.00, 120.00, -0.75)),  # overlapping parts
]


def _population(seed: int, n: int = 3000) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    point = rng.random(n) < 0.7
    ids = np.sort(rng.choice(10 * n, size=n, replace=False)).astype(np.int64) + 1
    return {
        "ids": ids,
        "lon": np.where(point, rng.uniform(119.70, 120.00, n), np.nan),
        "lat": np.where(point, rng.uniform(-1.00, -0.75, n), np.nan),
        # Subscribers with a point keep a code too (as DAFTAR with a located point stores it): both the code
        # rule and the point rule reach them, so a match must merge overlapping parts.
        "codes": rng.choice(CODES, size=n),
        "languages": rng.choice(np.array(["id", "en"], dtype="U8"), size=n),
        "sms": rng.random(n) < 0.8,
        "social": rng.random(n) < 0.3,
    }


def _arrays(pop: dict[str, np.ndarray]) -> targeting.SubscriberArrays:
    channels = {name: np.zeros(pop["ids"].size, dtype=bool) for name in targeting.personal_channels()}
    channels["sms"], channels["social"] = pop["sms"], pop["social"]
    return targeting.SubscriberArrays(pop["ids"], pop["lon"], pop["lat"], pop["codes"], pop["languages"], channels)


def _reference(pop: dict[str, np.ndarray], target: targeting.TargetSpec) -> np.ndarray:
    """The rule, one subscriber at a time: a point inside the drawn area or a code's boundary, a code-only
    subscriber whose code's boundary lies in the drawn area, or a code equal to or under a target code."""
    ids, lon, lat, codes = pop["ids"], pop["lon"], pop["lat"], pop["codes"]
    hit: set[int] = set()
    if target.drawn is not None:
        only_code = np.where(np.isfinite(lon), "", codes)
        hit |= set(brute_force_match(target.drawn, ids, lon, lat, only_code).tolist())
    for code in target.codes:
        hit |= {int(i) for i, c in zip(ids, codes, strict=True) if c == code or c.startswith(code + ".")}
        found = boundaries.nearest_geometry(code)
        if found is not None:
            hit |= set(brute_force_match(found[1], ids, lon, lat).tolist())
    return np.array(sorted(hit), dtype=np.int64)


@pytest.mark.parametrize("mask_fraction", [1_000_000, 1])  # every union by mask / every union by sort
@pytest.mark.parametrize("seed", [1, 2])
def test_match_and_counts_follow_the_rule_one_by_one(monkeypatch, seed, mask_fraction):
    monkeypatch.setattr(targeting, "MASK_FRACTION", mask_fraction)
    pop = _population(seed)
    arrays = _arrays(pop)
    for target in TARGETS:
        want = _reference(pop, target)
        got = arrays.match(target)
        assert got.tolist() == want.tolist(), f"{target}: missing {set(want) - set(got)}, extra {set(got) - set(want)}"
        counts = targeting.count_per_channel(arrays, target)
        at = np.searchsorted(pop["ids"], want)
        assert counts["any"] == want.size
        assert counts["sms"] == int(pop["sms"][at].sum())
        assert counts["social"] == int(pop["social"][at].sum())
        assert arrays.channel_counts(want) == {
            name: int(arrays.on_channel(want, name).size) for name in targeting.personal_channels()
        }


@pytest.mark.parametrize("mask_fraction", [1_000_000, 1])
def test_union_of_positions_is_sorted_and_unique(monkeypatch, mask_fraction):
    monkeypatch.setattr(targeting, "MASK_FRACTION", mask_fraction)
    rng = np.random.default_rng(7)
    for _ in range(50):
        size = int(rng.integers(1, 500))
        parts = [
            rng.choice(size, size=int(rng.integers(0, size + 1)), replace=False) for _ in range(int(rng.integers(0, 4)))
        ]
        parts = [p for p in parts if p.size]
        want = np.unique(np.concatenate(parts)) if parts else np.array([], dtype=np.int64)
        assert targeting.union_positions(parts, size).tolist() == want.tolist()

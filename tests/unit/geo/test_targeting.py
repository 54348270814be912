import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.areas import build_area
from geo.targeting import SubscriberIndex, brute_force_match

CODES = np.array(
    [
        "",
        "33.15",
        "33.15.13",
        "33.15.13.1012",
        "72.71",
        "72.71.01",
        "34.04.16.2005",
        "11.01.01.2001",
        "99.99",
        "33.16",
        "31.71",
    ]
)


def random_subscribers(seed, n, box):
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = box
    lon = rng.uniform(minx, maxx, n)
    lat = rng.uniform(miny, maxy, n)
    nopoint = rng.random(n) < 0.2
    lon[nopoint] = np.nan
    lat[nopoint] = np.nan
    outside = rng.random(n) < 0.01  # a few points outside Indonesia's grid must still be handled
    lon[outside] = rng.uniform(80, 93, outside.sum())
    ids = rng.choice(10 * n + 10, n, replace=False).astype(np.int64)
    return ids, lon, lat, rng.choice(CODES, n)


def random_area(draw_seed):
    rng = np.random.default_rng(draw_seed)
    kind = rng.integers(4)
    if kind == 0:
        return build_area(
            {"codes": [str(rng.choice(["33.15", "72.71", "34.04", "33.15.13", "31.71"]))]}
        ).geometry
    if kind == 1:
        lon, lat = rng.uniform(110.3, 111.2), rng.uniform(-7.6, -6.9)
        return build_area(
            {"circle": {"lon": lon, "lat": lat, "radius_km": float(rng.uniform(0.5, 40))}}
        ).geometry
    if kind == 2:
        pts = np.column_stack([rng.uniform(110.3, 111.2, 12), rng.uniform(-7.6, -6.9, 12)])
        return shapely.make_valid(shapely.Polygon(pts)).buffer(0)  # random, often self-intersecting, repaired
    return build_area({"codes": ["72.71", "33.15"]}).geometry


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 3000), area_seed=st.integers(0, 2**32 - 1))
def test_index_equals_brute_force(seed, n, area_seed):
    ids, lon, lat, codes = random_subscribers(seed, n, (110.2, -7.8, 111.3, -6.8))
    area = random_area(area_seed)
    index = SubscriberIndex(ids, lon, lat, codes)
    assert np.array_equal(index.match(area), brute_force_match(area, ids, lon, lat, codes))


def test_dense_points_around_palu_equal_brute_force():
    ids, lon, lat, codes = random_subscribers(7, 200_000, (119.7, -1.0, 120.0, -0.6))
    index = SubscriberIndex(ids, lon, lat, codes)
    area = build_area({"codes": ["72.71"]}).geometry
    got = index.match(area)
    assert got.size > 1000
    assert np.array_equal(got, brute_force_match(area, ids, lon, lat, codes))


def test_points_on_the_border_and_in_a_block_corner_are_included():
    area = shapely.box(110.0, -7.5, 110.5, -7.0)
    lon = np.array([110.0, 110.5, 110.25, 109.99, 110.0])
    lat = np.array([-7.25, -7.0, -7.25, -7.25, -7.5])
    index = SubscriberIndex(np.arange(5), lon, lat)
    assert list(index.match(area)) == [0, 1, 2, 4]


def test_no_point_subscribers_match_by_admin_code_but_not_a_neighbour_that_only_touches():
    ids = np.array([1, 2, 3, 4, 5])
    nan = np.full(5, np.nan)
    codes = np.array(["33.15", "33.15.13.1012", "33.16", "11.01.01.2001", "99.99"])
    index = SubscriberIndex(ids, nan, nan, codes)
    assert index.unresolved_codes == ("99.99",)
    grobogan = build_area({"codes": ["33.15"]}).geometry
    got = set(index.match(grobogan))
    assert {1, 2} <= got and 4 not in got and 5 not in got


def test_iter_match_batches_cover_match_once():
    ids, lon, lat, codes = random_subscribers(3, 5000, (110.2, -7.8, 111.3, -6.8))
    index = SubscriberIndex(ids, lon, lat, codes)
    area = build_area({"codes": ["33.15"]}).geometry
    batches = list(index.iter_match(area, batch_size=100))
    assert all(1 <= len(b) <= 100 for b in batches)
    assert np.array_equal(np.concatenate(batches), index.match(area))
    with pytest.raises(ValueError):
        next(index.iter_match(area, batch_size=0))


def test_empty_index():
    index = SubscriberIndex(np.array([], np.int64), np.array([]), np.array([]))
    assert index.match(build_area({"codes": ["72.71"]}).geometry).size == 0

"""What the issue-18 safety checks cost: the authority policy's area rule and the recipient-set rules.

Two tables, ours against the previous rules (baseline), median of --repeat runs each:
  area rule   — baseline: geo.jurisdiction.check_within alone (300 m tolerance, 100 m² noise floor);
                ours: broadcast.authority.may (every part checked, then check_within), for a code-only alert,
                a 2 km box, the 3-sliver MultiPolygon of the review and a 200-part flood MultiPolygon;
  recipients  — baseline: SubscriberIndex.match with code-only subscribers matched by overlap;
                ours: match by containment, then SubscriberArrays.within (held to the jurisdiction),
                over --subscribers subscribers around Palu (a tenth known only by a desa/kecamatan code).

    python benchmarks/authority_checks.py --subscribers 1000000 --repeat 5
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable

import numpy as np
import shapely

from broadcast.authority import Action, Target, may
from broadcast.subscribers.targeting import SubscriberArrays, TargetSpec
from geo import boundaries, jurisdiction
from geo import targeting as geo_targeting
from geo.crs import metric_for


class Operator:
    id, role, jurisdiction = 0, "operator", "72.71"


def timed(fn: Callable[[], object], repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs) * 1000


def box(lon: float, lat: float, side_m: float, dx: float = 0, dy: float = 0) -> shapely.Polygon:
    proj = metric_for(shapely.Point(lon, lat))
    c = proj.forward(shapely.Point(lon, lat))
    return proj.inverse(
        shapely.box(c.x + dx - side_m / 2, c.y + dy - side_m / 2, c.x + dx + side_m / 2, c.y + dy + side_m / 2)
    )


def areas() -> dict[str, Target]:
    palu = (119.87, -0.90)
    sleman = (110.2956, -7.8131)
    slivers = shapely.MultiPolygon([box(*sleman, 4, dx, dy) for dx, dy in ((0, 0), (30, 0), (0, 30))])
    flood = shapely.MultiPolygon([box(*palu, 40, 60 * (i % 20), 60 * (i // 20)) for i in range(200)])
    return {
        "codes 72.71.01, 72.71.02": Target.area(["72.71.01", "72.71.02"]),
        "2 km box": Target.area([], [box(*palu, 2000)]),
        "3 slivers in Sleman": Target.area(["72.71"], [slivers]),
        "200-part flood MultiPolygon": Target.area([], [flood]),
    }


def subscribers(n: int) -> SubscriberArrays:
    rng = np.random.default_rng(18)
    lon = rng.uniform(119.75, 120.0, n)
    lat = rng.uniform(-1.0, -0.75, n)
    desa = [c for c, _ in boundaries.descendants("72.71", "desa_kelurahan")]
    desa += [c for c, _ in boundaries.descendants("72.03", "desa_kelurahan")]
    codes = np.array(rng.choice(desa, n), dtype="U13")
    code_only = rng.random(n) < 0.1
    lon[code_only], lat[code_only] = np.nan, np.nan
    ids = np.arange(n, dtype=np.int64)
    return SubscriberArrays(
        ids, lon, lat, codes, np.full(n, "id", dtype="U8"), {"sms": np.ones(n, bool), "social": np.zeros(n, bool)}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    print("area rule (ms per check; baseline = check_within only)")
    print(f"| {'area':<30} | baseline | ours | ours refuses |")
    for name, target in areas().items():
        may(Operator(), Action.ALERT_CREATE, target)  # warm caches (jurisdiction outline, boundaries)

        def old(target: Target = target) -> None:
            for g in target.geometries:
                with contextlib.suppress(jurisdiction.OutsideJurisdiction):
                    jurisdiction.check_within("72.71", g, allow_sea=True)

        base = timed(old, args.repeat)
        ours = timed(lambda target=target: may(Operator(), Action.ALERT_CREATE, target), args.repeat)
        refused = not may(Operator(), Action.ALERT_CREATE, target).allowed
        print(f"| {name:<30} | {base:8.2f} | {ours:6.2f} | {refused!s:<12} |")

    subs = subscribers(args.subscribers)
    palu_box = box(119.87, -0.90, 2000)
    spec = TargetSpec(("72.71.01",), palu_box)

    def overlap_match() -> np.ndarray:
        # The previous rule for code-only subscribers: their boundary overlaps the area.
        saved = geo_targeting.contained
        geo_targeting.contained = lambda geoms, area: ~shapely.touches(geoms, area)  # type: ignore[assignment]
        try:
            return subs.match(spec)
        finally:
            geo_targeting.contained = saved

    base_ids = overlap_match()
    ours_ids = subs.within(subs.match(spec), "72.71")
    base = timed(overlap_match, args.repeat)
    ours = timed(lambda: subs.within(subs.match(spec), "72.71"), args.repeat)
    print(f"\nrecipients of a 2 km box + kecamatan 72.71.01 among {args.subscribers:,} subscribers (ms)")
    print("| rule | ms | recipients |")
    print(f"| baseline: overlap, no jurisdiction hold | {base:.1f} | {base_ids.size:,} |")
    print(f"| ours: containment, held to 72.71 | {ours:.1f} | {ours_ids.size:,} |")


if __name__ == "__main__":
    main()

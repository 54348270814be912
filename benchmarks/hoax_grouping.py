"""Benchmark: grouping forwarded fakes for the hoax console (`GET /konsol/hoaks`), ours (MinHash LSH blocking,
`broadcast.trust.service.group_texts`) against the previous all-pairs grouping (rapidfuzz `cdist` over every pair,
then a Python loop over the n x n matrix), on the same synthetic corpus (tests/hoax_corpus.py, up to 2,000
characters a text).

    python benchmarks/hoax_grouping.py --sizes 500 1001 2000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rapidfuzz import fuzz
from rapidfuzz.process import cdist

from broadcast.trust.service import CLUSTER_SCORE, _comparable, group_texts
from tests.hoax_corpus import hoax_texts


def all_pairs(texts: list[str], threshold: float = CLUSTER_SCORE) -> list[int]:
    """The grouping before issue 24 (trust/service.py): every pair scored."""
    comparable = [_comparable(t) for t in texts]
    scores = cdist(comparable, comparable, scorer=fuzz.token_set_ratio, score_cutoff=threshold)
    parent = list(range(len(texts)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(texts)):
        for j in range(i + 1, len(texts)):
            if scores[i][j] >= threshold:
                parent[root(j)] = root(i)
    return [root(i) for i in range(len(texts))]


def _partition(groups: list[int]) -> set[frozenset[int]]:
    out: dict[int, set[int]] = {}
    for i, g in enumerate(groups):
        out.setdefault(g, set()).add(i)
    return {frozenset(s) for s in out.values()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 1001])
    parser.add_argument("--no-baseline", action="store_true", help="skip the all-pairs baseline")
    args = parser.parse_args()
    print(f"{'hoaxes':>7} | {'ours (s)':>9} | {'all pairs (s)':>13} | {'groups':>6} | same groups")
    print(f"{'-' * 7}-+-{'-' * 9}-+-{'-' * 13}-+-{'-' * 6}-+-{'-' * 11}")
    for n in args.sizes:
        texts = hoax_texts(n)
        started = time.perf_counter()
        ours = group_texts(texts)
        ours_s = time.perf_counter() - started
        base_s, same = float("nan"), "-"
        if not args.no_baseline:
            started = time.perf_counter()
            base = all_pairs(texts)
            base_s = time.perf_counter() - started
            same = "yes" if _partition(ours) == _partition(base) else "NO"
        print(f"{n:>7,} | {ours_s:>9.2f} | {base_s:>13.2f} | {len(set(ours)):>6} | {same}")


if __name__ == "__main__":
    main()

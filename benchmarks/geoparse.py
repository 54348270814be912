"""Benchmark: the report-text geoparser on hostile texts at the input maxima, ours vs the parser before issue 24.

Texts: "banjir " + "sidomulyo " * n (a name of 99 places, repeated) at n = 40, 160 (an SMS's maximum) and 400
(the API and /lapor maximum, 4,000 characters); 4,000 characters of distinct kecamatan names (the work cap);
4,000 characters of misspelt names after "kel" (the misspelling-search cap). Each parse of the old parser runs
in a child process with a time limit (it needs minutes at the maxima); ours runs in this process, median of 5.
The work figure is ours' candidate evaluations (bounded whatever the text).

    python benchmarks/geoparse.py                      # old parser limited to 600 s per text
    python benchmarks/geoparse.py --old-timeout 60     # quicker: the old parser's slow cases show "> 60 s"
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geo import gazetteer, geoparse  # noqa: E402

console = Console(width=140)
MAX_TEXT = 4000


def texts() -> dict[str, str]:
    """The hostile texts by label, each at most MAX_TEXT characters."""
    kecamatan = [p.nama for p in gazetteer.places_at("kecamatan")]
    distinct = "banjir di "
    for name in kecamatan:
        if len(distinct) + len(name) + 2 > MAX_TEXT:
            break
        distinct += name + ", "
    misspelt = ""
    i = 0
    while len(misspelt) + 20 < MAX_TEXT:
        misspelt += f"kel sidomulyx{i} "
        i += 1
    out = {f'"sidomulyo " x {n}': "banjir " + "sidomulyo " * n for n in (40, 160, 400)}
    out[f"{len(distinct):,} chars of distinct kecamatan names"] = distinct
    out[f"{len(misspelt):,} chars of misspelt names after kel"] = misspelt
    return out


def time_ours(text: str, repeat: int = 5) -> tuple[float, int, bool]:
    """Median seconds of geo.geoparse.parse_location, its work units, and whether a cap was hit."""
    found = geoparse.parse_location(text)
    spent = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        found = geoparse.parse_location(text)
        spent.append(time.perf_counter() - t0)
    return statistics.median(spent), found.work, found.capped


OLD_SCRIPT = """
import sys, time
sys.path.insert(0, {root!r})
sys.path.insert(0, {bench!r})
import _geoparse_before as old
text = sys.stdin.read()
old.parse_location("banjir")  # indexes loaded before timing
t0 = time.perf_counter()
old.parse_location(text)
print(time.perf_counter() - t0)
"""


def time_old(text: str, timeout: float) -> float | None:
    """Seconds the pre-issue-24 parser needs for `text` in a child process, None past `timeout`."""
    script = OLD_SCRIPT.format(root=str(ROOT), bench=str(ROOT / "benchmarks"))
    try:
        done = subprocess.run(
            [sys.executable, "-c", script], input=text, capture_output=True, text=True, timeout=timeout + 30
        )
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    seconds = float(done.stdout.strip())
    return seconds if seconds <= timeout else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old-timeout", type=float, default=600, help="seconds allowed to the old parser per text")
    args = parser.parse_args()
    geoparse.parse_location("banjir")  # indexes loaded before timing
    table = Table(title="Geoparser on hostile report texts: ours (linear, capped) vs before issue 24 (quadratic)")
    for col in ("text", "ours (median of 5)", "ours: work units", "ours: cap hit", "before", "speed-up"):
        table.add_column(col)
    for label, text in texts().items():
        ours, work, capped = time_ours(text)
        console.print(f"{label}: ours {ours * 1000:.1f} ms; running the old parser (limit {args.old_timeout:.0f} s)")
        old = time_old(text, args.old_timeout)
        table.add_row(
            label,
            f"{ours * 1000:.1f} ms",
            f"{work:,}",
            "yes" if capped else "no",
            f"{old:.1f} s" if old is not None else f"> {args.old_timeout:.0f} s",
            f"{old / ours:,.0f}x" if old is not None else f"> {args.old_timeout / ours:,.0f}x",
        )
    console.print(table)


if __name__ == "__main__":
    main()

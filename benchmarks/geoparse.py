"""Benchmark: the report-text geoparser on hostile texts at the input maxima, ours vs the parser before issue 24.

Texts: "banjir " + "sidomulyo " * n (a name of 99 places, repeated) at n = 40, 160 (an SMS's maximum) and 400
(the API and /lapor maximum, 4,000 characters); 4,000 characters of distinct kecamatan names (the work cap);
4,000 characters of misspelt names after "kel" (the misspelling-search cap). Times are CPU seconds of the parse
(the machine is shared: wall time would measure the neighbours). The old parser runs in a child process with a
CPU limit (it needs minutes at the maxima); ours runs in this process, median of 5. The work figure is ours'
candidate evaluations (bounded whatever the text).

    python benchmarks/geoparse.py                      # old parser limited to 600 CPU seconds per text
    python benchmarks/geoparse.py --old-cpu-limit 60   # quicker: the old parser's slow cases show "> 60 s"
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
    """Median CPU seconds of geo.geoparse.parse_location, its work units, and whether a cap was hit."""
    found = geoparse.parse_location(text)
    spent = []
    for _ in range(repeat):
        t0 = time.process_time()
        found = geoparse.parse_location(text)
        spent.append(time.process_time() - t0)
    return statistics.median(spent), found.work, found.capped


OLD_SCRIPT = """
import resource, sys, time
sys.path.insert(0, {root!r})
sys.path.insert(0, {bench!r})
import _geoparse_before as old
text = sys.stdin.read()
old.parse_location("banjir")  # indexes loaded before timing
t0 = time.process_time()
resource.setrlimit(resource.RLIMIT_CPU, (int(t0 + {limit}) + 1, int(t0 + {limit}) + 10))
old.parse_location(text)
print(time.process_time() - t0)
"""


def time_old(text: str, limit: float) -> float | None:
    """CPU seconds the pre-issue-24 parser needs for `text` in a child process, None past `limit`."""
    script = OLD_SCRIPT.format(root=str(ROOT), bench=str(ROOT / "benchmarks"), limit=limit)
    done = subprocess.run([sys.executable, "-c", script], input=text, capture_output=True, text=True)
    if done.returncode != 0:
        if done.returncode < 0:  # SIGXCPU / SIGKILL at the CPU limit
            return None
        raise SystemExit(done.stderr)
    seconds = float(done.stdout.strip())
    return seconds if seconds <= limit else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old-cpu-limit", type=float, default=600, help="CPU seconds for the old parser per text")
    args = parser.parse_args()
    geoparse.parse_location("banjir")  # indexes loaded before timing
    table = Table(title="Geoparser on hostile report texts: ours (linear, capped) vs before issue 24 (quadratic)")
    for col in ("text", "ours: CPU (median of 5)", "ours: work units", "ours: cap hit", "before: CPU", "speed-up"):
        table.add_column(col)
    for label, text in texts().items():
        ours, work, capped = time_ours(text)
        console.print(
            f"{label}: ours {ours * 1000:.1f} ms; running the old parser (limit {args.old_cpu_limit:.0f} CPU s)"
        )
        old = time_old(text, args.old_cpu_limit)
        table.add_row(
            label,
            f"{ours * 1000:.1f} ms",
            f"{work:,}",
            "yes" if capped else "no",
            f"{old:.1f} s" if old is not None else f"> {args.old_cpu_limit:.0f} s",
            f"{old / ours:,.0f}x" if old is not None else f"> {args.old_cpu_limit / ours:,.0f}x",
        )
    console.print(table)


if __name__ == "__main__":
    main()

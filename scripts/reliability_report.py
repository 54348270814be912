"""Render test-artifacts/reliability.json (written by the reliability suite) as the markdown table of
RELIABILITY.md, between the markers <!-- reliability:begin --> and <!-- reliability:end -->.

    BROADCAST_TEST_REDIS_URL=redis://127.0.0.1:6379/10 .venv/bin/python -m pytest tests/reliability
    .venv/bin/python scripts/reliability_report.py            # rewrites the table in RELIABILITY.md
    .venv/bin/python scripts/reliability_report.py --print    # only prints it
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- reliability:begin -->", "<!-- reliability:end -->"


def render(rows: list[dict[str, object]]) -> str:
    """One markdown row per fault or attack: area, what was tried, times, failures, outcomes seen."""
    lines = ["| area | fault or attack | tries | failed | outcome |", "|---|---|---:|---:|---|"]
    for r in rows:
        outcomes = r["outcomes"]
        assert isinstance(outcomes, dict)
        seen = ", ".join(f"{k} ×{v}" if len(outcomes) > 1 else str(k) for k, v in outcomes.items())
        attack = str(r["attack"]).replace("|", "\\|")
        lines.append(f"| {r['area']} | {attack} | {r['tries']} | {r['failed']} | {seen.replace('|', '/')} |")
    tries = sum(int(r["tries"]) for r in rows)  # type: ignore[call-overload]
    failed = sum(int(r["failed"]) for r in rows)  # type: ignore[call-overload]
    lines.append(f"| **all** | {len(rows)} kinds | **{tries}** | **{failed}** | |")
    return "\n".join(lines)


def stale(data: dict[str, object]) -> str | None:
    """Why these rows cannot stand for one finished run (None when they can): the run never finished, it
    recorded nothing, or a row is older than the run (left over from an earlier one)."""
    started, finished, rows = data.get("run_started_at"), data.get("run_finished_at"), data.get("rows")
    if not isinstance(started, int | float):
        return "no run start time (written by an older recorder)"
    if not isinstance(finished, int | float):
        return "the run that wrote it did not finish"
    if not isinstance(rows, list) or not rows:
        return "the run recorded no rows"
    for r in rows:
        at = r.get("recorded_at") if isinstance(r, dict) else None
        if not isinstance(at, int | float) or not started <= at <= finished:
            return f"row {r.get('area')!r}/{r.get('attack')!r} was not recorded during the run"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, default=ROOT / "test-artifacts" / "reliability.json")
    parser.add_argument("--output", type=Path, default=ROOT / "RELIABILITY.md")
    parser.add_argument("--print", action="store_true", help="print the table instead of updating the file")
    args = parser.parse_args()
    if not args.input.exists():
        print(f"{args.input} not found: run the reliability suite first (pytest tests/reliability)", file=sys.stderr)
        return 2
    data = json.loads(args.input.read_text())
    problem = stale(data)
    if problem:
        print(f"{args.input}: {problem}; refusing to render it (run the reliability suite again)", file=sys.stderr)
        return 2
    table = render(data["rows"])
    if args.print:
        print(table)
        return 0
    text = args.output.read_text()
    if BEGIN not in text or END not in text:
        print(f"{args.output} has no {BEGIN} ... {END} markers", file=sys.stderr)
        return 2
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    args.output.write_text(pattern.sub(lambda _: f"{BEGIN}\n{table}\n{END}", text))
    print(f"updated {args.output.relative_to(ROOT)} ({table.count(chr(10)) - 2} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

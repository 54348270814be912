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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, default=ROOT / "test-artifacts" / "reliability.json")
    parser.add_argument("--output", type=Path, default=ROOT / "RELIABILITY.md")
    parser.add_argument("--print", action="store_true", help="print the table instead of updating the file")
    args = parser.parse_args()
    if not args.input.exists():
        print(f"{args.input} not found: run the reliability suite first (pytest tests/reliability)", file=sys.stderr)
        return 2
    table = render(json.loads(args.input.read_text())["rows"])
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

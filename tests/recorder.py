"""The recorder behind RELIABILITY.md (used by tests/reliability and the fan-out fault tests).

Every reliability test records each fault or attack it tried with `record(area, attack, outcome, ok=...)`. Records
are merged into test-artifacts/reliability.json (one row per area+attack: tries, failures, the outcomes
seen); `python scripts/reliability_report.py` renders that file as the table in RELIABILITY.md.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

ARTIFACT = Path(
    os.environ.get(
        "BROADCAST_RELIABILITY_JSON", Path(__file__).resolve().parents[1] / "test-artifacts" / "reliability.json"
    )
)

_rows: dict[tuple[str, str], dict[str, object]] = {}


def _record(area: str, attack: str, outcome: str, *, ok: bool, tries: int = 1) -> None:
    row = _rows.setdefault((area, attack), {"area": area, "attack": attack, "tries": 0, "failed": 0, "outcomes": {}})
    row["tries"] = int(row["tries"]) + tries  # type: ignore[call-overload]
    if not ok:
        row["failed"] = int(row["failed"]) + tries  # type: ignore[call-overload]
    outcomes: dict[str, int] = row["outcomes"]  # type: ignore[assignment]
    outcomes[outcome] = outcomes.get(outcome, 0) + tries


@pytest.fixture
def record() -> Callable[..., None]:
    """`record(area, attack, outcome, ok=True, tries=1)`: note one (or `tries`) attempt and what came of it."""
    return _record


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _rows:
        return
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    existing: dict[str, dict[str, object]] = {}
    if ARTIFACT.exists():
        try:
            existing = {f"{r['area']}|{r['attack']}": r for r in json.loads(ARTIFACT.read_text())["rows"]}
        except (ValueError, KeyError, TypeError):
            existing = {}
    # A rerun of a test replaces its rows; rows of tests not run this time stay.
    for (area, attack), row in _rows.items():
        existing[f"{area}|{attack}"] = row
    rows = sorted(existing.values(), key=lambda r: (str(r["area"]), str(r["attack"])))
    ARTIFACT.write_text(json.dumps({"rows": rows}, indent=1, ensure_ascii=False) + "\n")

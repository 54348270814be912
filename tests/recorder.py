"""The recorder behind RELIABILITY.md (used by tests/reliability and the fan-out fault tests).

Every reliability test records each fault or attack it tried with `record(area, attack, outcome, ok=..., tries=...)`,
where `ok` is what the test observed (the same conditions it then asserts) and `tries` is how many attempts it
made. Rows are kept per area+attack (tries, failures, the outcomes seen) and written to
test-artifacts/reliability.json at the end of the run; `python scripts/reliability_report.py` renders that file as
the table in RELIABILITY.md.

The file belongs to one run: it is emptied when the run starts, every row carries the time it was recorded, and
a test that fails counts as a failure of every row it recorded (or, if it failed before recording anything, as
a failed row of its own), so a broken check can never show as passing.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ARTIFACT = Path(
    os.environ.get(
        "BROADCAST_RELIABILITY_JSON", Path(__file__).resolve().parents[1] / "test-artifacts" / "reliability.json"
    )
)
FAILED_TEST = "test failed"

_rows: dict[tuple[str, str], dict[str, object]] = {}
_run: dict[str, float] = {}
# nodeid -> what each test recorded: {(area, attack): [tries, failed]}
_by_test: dict[str, dict[tuple[str, str], list[int]]] = {}


def _add(area: str, attack: str, outcome: str, *, tries: int, failed: int) -> None:
    row = _rows.setdefault((area, attack), {"area": area, "attack": attack, "tries": 0, "failed": 0, "outcomes": {}})
    row["tries"] = int(row["tries"]) + tries  # type: ignore[call-overload]
    row["failed"] = int(row["failed"]) + failed  # type: ignore[call-overload]
    row["recorded_at"] = time.time()
    outcomes: dict[str, int] = row["outcomes"]  # type: ignore[assignment]
    outcomes[outcome] = outcomes.get(outcome, 0) + tries


def _recorder(nodeid: str) -> Callable[..., None]:
    def record(area: str, attack: str, outcome: str, *, ok: bool, tries: int = 1) -> None:
        if not isinstance(ok, bool):
            raise TypeError("ok must be a bool computed from what the test observed")
        if tries < 1:
            raise ValueError("tries must count the attempts the test made (at least one)")
        _add(area, attack, outcome, tries=tries, failed=0 if ok else tries)
        mine = _by_test.setdefault(nodeid, {}).setdefault((area, attack), [0, 0])
        mine[0] += tries
        mine[1] += 0 if ok else tries

    return record


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Iterator[Callable[..., None]]:
    """`record(area, attack, outcome, ok=..., tries=1)`: note `tries` attempts and what came of them."""
    yield _recorder(request.node.nodeid)


def mark_failed(nodeid: str, when: str) -> None:
    """A test that used `record` failed: its rows count as failed (every try it recorded as passing)."""
    recorded = _by_test.get(nodeid, {})
    if not recorded:
        _add("unrecorded", nodeid, f"{FAILED_TEST} ({when}) before recording", tries=1, failed=1)
        return
    for (area, attack), (tries, failed) in recorded.items():
        if tries > failed:
            row = _rows[(area, attack)]
            row["failed"] = int(row["failed"]) + tries - failed  # type: ignore[call-overload]
            outcomes: dict[str, int] = row["outcomes"]  # type: ignore[assignment]
            outcomes[f"{FAILED_TEST} ({when})"] = outcomes.get(f"{FAILED_TEST} ({when})", 0) + tries - failed
            recorded[(area, attack)] = [tries, tries]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    report = yield
    if report.failed and "record" in getattr(item, "fixturenames", ()):
        mark_failed(item.nodeid, report.when)
    return report


def _write(finished: bool) -> None:
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    rows = sorted(_rows.values(), key=lambda r: (str(r["area"]), str(r["attack"])))
    data: dict[str, object] = {"run_started_at": _run["started_at"], "rows": rows}
    if finished:
        data["run_finished_at"] = time.time()
    ARTIFACT.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")


def pytest_sessionstart(session: pytest.Session) -> None:
    if hasattr(session.config, "workerinput"):  # an xdist worker: the controller owns the file
        return
    _rows.clear()
    _by_test.clear()
    _run["started_at"] = time.time()
    _write(finished=False)  # each run starts empty: rows of an earlier run never survive into this one


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker hands its rows to the controller (pytest_testnodedown)
        workeroutput["reliability_rows"] = json.dumps(list(_rows.values()))
        return
    if "started_at" in _run:
        _write(finished=True)


def _merge(rows: list[dict[str, object]]) -> None:
    for theirs in rows:
        key = (str(theirs["area"]), str(theirs["attack"]))
        row = _rows.setdefault(key, {"area": key[0], "attack": key[1], "tries": 0, "failed": 0, "outcomes": {}})
        row["tries"] = int(row["tries"]) + int(theirs["tries"])  # type: ignore[call-overload]
        row["failed"] = int(row["failed"]) + int(theirs["failed"])  # type: ignore[call-overload]
        row["recorded_at"] = max(float(row.get("recorded_at", 0)), float(theirs["recorded_at"]))  # type: ignore[arg-type]
        outcomes: dict[str, int] = row["outcomes"]  # type: ignore[assignment]
        for outcome, n in dict(theirs["outcomes"]).items():  # type: ignore[call-overload]
            outcomes[outcome] = outcomes.get(outcome, 0) + int(n)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    """xdist controller: fold a finished worker's rows into this run's table. A worker that died before handing
    its rows over is itself a failed row, so a crash can never read as a clean table."""
    output = getattr(node, "workeroutput", {}) or {}
    if "reliability_rows" in output:
        _merge(json.loads(output["reliability_rows"]))
    else:
        _add("unrecorded", f"xdist worker {getattr(node, 'workerinput', {}).get('workerid', '?')}", "worker lost before reporting",
             tries=1, failed=1)

"""The recorder behind RELIABILITY.md, run as a plugin of an inner pytest run: a test that fails counts as a
failure of what it recorded, a run starts empty, and the report refuses rows that are not this run's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import reliability_report  # noqa: E402

INNER = '''
def test_passes(record):
    seen = [1, 1, 1]
    record("area", "all good", "fine", ok=all(seen), tries=len(seen))
    assert all(seen)

def test_records_ok_then_fails(record):
    record("area", "asserts after recording", "fine", ok=True, tries=2)
    assert 1 == 2

def test_fails_before_recording(record):
    assert False, "broke before the row"
    record("area", "never reached", "fine", ok=True)

def test_records_a_failure_and_fails(record):
    record("area", "seen failing", "BROKEN", ok=False)
    assert False

def test_ok_must_be_a_bool(record):
    record("area", "constant", "fine", ok=1)
'''


@pytest.fixture(scope="module")
def inner(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("recorder")
    (tmp / "test_inner.py").write_text(textwrap.dedent(INNER))
    artifact = tmp / "reliability.json"
    # Rows of an earlier run: they must not survive into this one.
    artifact.write_text(json.dumps({"rows": [{"area": "old", "attack": "stale row", "tries": 9, "failed": 0,
                                               "outcomes": {"fine": 9}}]}))
    env = {**os.environ, "BROADCAST_RELIABILITY_JSON": str(artifact), "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.recorder",
         "--rootdir", str(tmp), "-c", os.devnull, str(tmp / "test_inner.py")],
        cwd=tmp, env=env, capture_output=True, text=True, timeout=120,
    )
    assert "4 failed, 1 passed" in run.stdout, run.stdout + run.stderr
    data = json.loads(artifact.read_text())
    data["by_attack"] = {r["attack"]: r for r in data["rows"]}
    return data


def test_a_run_starts_empty(inner):
    assert "stale row" not in inner["by_attack"]


def test_a_passing_test_counts_what_it_saw(inner):
    row = inner["by_attack"]["all good"]
    assert (row["tries"], row["failed"]) == (3, 0)


def test_a_test_that_fails_after_recording_ok_counts_as_failed(inner):
    row = inner["by_attack"]["asserts after recording"]
    assert (row["tries"], row["failed"]) == (2, 2)
    assert any(k.startswith("test failed") for k in row["outcomes"])


def test_a_test_that_fails_before_recording_leaves_a_failed_row(inner):
    rows = [r for r in inner["rows"] if r["area"] == "unrecorded"]
    names = sorted(r["attack"].rsplit("::", 1)[1] for r in rows)
    assert names == ["test_fails_before_recording", "test_ok_must_be_a_bool"]
    assert all(r["failed"] == r["tries"] == 1 for r in rows)


def test_a_recorded_failure_is_not_counted_twice(inner):
    row = inner["by_attack"]["seen failing"]
    assert (row["tries"], row["failed"]) == (1, 1)


def test_the_report_renders_this_run_and_refuses_anything_else(inner):
    good = {k: v for k, v in inner.items() if k != "by_attack"}
    assert reliability_report.stale(good) is None
    old = dict(good, rows=[*good["rows"], dict(good["rows"][0], recorded_at=good["run_started_at"] - 60)])
    assert "not recorded during the run" in reliability_report.stale(old)
    assert "did not finish" in reliability_report.stale({k: v for k, v in good.items() if k != "run_finished_at"})
    assert "no rows" in reliability_report.stale(dict(good, rows=[]))
    assert "no run start" in reliability_report.stale({"rows": good["rows"]})

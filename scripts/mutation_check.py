"""Named mutations of the safety-critical code: each breaks one rule on purpose, and the tests that guard that rule
must fail. A mutation that leaves its tests green is a hole in the suite.

Each mutation is a file, the exact original snippet (it must occur exactly once), its replacement and the test
selection that must fail. A snippet that is no longer found (the code moved or changed) is an error, never a
silent pass: update the mutation with the code. First the selections run on the unmutated code (they must pass,
or a failing selection would "catch" everything); then each mutation is applied, its tests run, and the file is
restored whatever happens.

    BROADCAST_TEST_REDIS_URL=redis://127.0.0.1:6379/15 .venv/bin/python scripts/mutation_check.py
    .venv/bin/python scripts/mutation_check.py --list
    .venv/bin/python scripts/mutation_check.py --only claim-sent-rows-again --only audit-no-link-check

Exit status: 0 when every mutation was caught, 1 when one survived, 2 when a snippet is missing or the unmutated
selections fail.
"""

from __future__ import annotations

import argparse
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SQLITE = ("-k", "not postgresql")  # the rule is in Python: one database is enough to see it break
DISPATCH = "tests/integration/test_dispatch.py"


@dataclass(frozen=True)
class Mutation:
    name: str
    rule: str  # the safety rule it breaks
    file: str
    original: str
    replacement: str
    tests: tuple[str, ...]  # pytest arguments: node ids, files, -k expressions


MUTATIONS: tuple[Mutation, ...] = (
    Mutation(
        "sqlite-for-update-unlocked",
        "a row read for update is the reader's until commit (one publish per alert)",
        "broadcast/db.py",
        '        cursor.execute("BEGIN IMMEDIATE")\n',
        "        pass\n",
        ("tests/integration/test_row_locks.py::test_two_workers_locking_one_alert_publish_it_once[sqlite]",),
    ),
    Mutation(
        "approve-own-alert",
        "two-person rule",
        "broadcast/authority.py",
        "    if rule.two_person and actor.id in target.contributors:\n",
        "    if False:\n",
        ("tests/integration/test_alert_service.py::test_author_cannot_approve_own_alert_and_nothing_changes[sqlite]",
         "tests/integration/test_lifecycle.py::test_update_reaches_the_original_recipients_plus_the_new_area[sqlite]"),
    ),
    Mutation(
        "claim-sent-rows-again",
        "claim/lease: nothing sent twice",
        "broadcast/dispatch/claims.py",
        "    claimable = or_(\n        Delivery.state == DeliveryState.PENDING.value,",
        "    claimable = or_(\n        Delivery.state.in_([DeliveryState.PENDING.value, DeliveryState.SENT.value]),",
        (f"{DISPATCH}::test_deliver_writes_outbox_once_and_redelivery_is_harmless[sqlite]",
         f"{DISPATCH}::test_sweep_finds_expired_leases_and_unplanned_approvals[sqlite]"),
    ),
    Mutation(
        "claim-ignores-the-lease",
        "claim/lease: a held row is not taken",
        "broadcast/dispatch/claims.py",
        "        and_(Delivery.state == DeliveryState.SENDING.value, Delivery.lease_until < now),\n    )\n    mine =",
        "        Delivery.state == DeliveryState.SENDING.value,\n    )\n    mine =",
        (f"{DISPATCH}::test_second_claim_of_the_same_rows_gets_nothing[sqlite]",),
    ),
    Mutation(
        "held-rows-use-up-retries",
        "recording outcomes: waiting for a limit is not an attempt",
        "broadcast/dispatch/outcomes.py",
        "attempts=Delivery.attempts - 1,",
        "attempts=Delivery.attempts,",
        ("tests/integration/test_x_publish.py::test_account_caps_hold_posts_in_redis_buckets_and_a_429_blocks_every_worker[sqlite]",),
    ),
    Mutation(
        "sent-recorded-as-pending",
        "recording outcomes: a sent message is recorded sent",
        "broadcast/dispatch/outcomes.py",
        '"b_state": DeliveryState.SENT.value, "b_pid"',
        '"b_state": DeliveryState.PENDING.value, "b_pid"',
        (f"{DISPATCH}::test_deliver_writes_outbox_once_and_redelivery_is_harmless[sqlite]",),
    ),
    Mutation(
        "recorder-forgets-failed-tests",
        "recording outcomes: a failing reliability test shows as failed",
        "tests/recorder.py",
        "        mark_failed(item.nodeid, report.when)",
        "        pass",
        ("tests/unit/test_recorder.py",),
    ),
    Mutation(
        "recorder-ignores-ok",
        "recording outcomes: a failed attempt counts as failed",
        "tests/recorder.py",
        "failed=0 if ok else tries)",
        "failed=0)",
        ("tests/unit/test_recorder.py",),
    ),
    Mutation(
        "report-renders-stale-rows",
        "recording outcomes: the table shows only this run",
        "scripts/reliability_report.py",
        "if not isinstance(at, int | float) or not started <= at <= finished:",
        "if not isinstance(at, int | float):",
        ("tests/unit/test_recorder.py",),
    ),
    Mutation(
        "audit-no-link-check",
        "audit chain: deleted, reordered or inserted entries",
        "broadcast/audit/service.py",
        "        if entry.prev_hash != prev:\n",
        "        if False:\n",
        ("tests/integration/test_audit.py", *SQLITE),
    ),
    Mutation(
        "audit-no-content-check",
        "audit chain: an edited entry",
        "broadcast/audit/service.py",
        "        if expected != entry.hash:\n",
        "        if False:\n",
        ("tests/integration/test_audit.py", *SQLITE),
    ),
    Mutation(
        "audit-no-head-check",
        "audit chain: a cut-off tail",
        "broadcast/audit/service.py",
        "    if count < head.entries:\n",
        "    if False:\n",
        ("tests/integration/test_audit.py", *SQLITE),
    ),
    Mutation(
        "triage-any-move",
        "triage: a report or an incident moves only as the triage rules allow",
        "broadcast/reports/triage.py",
        "        if value not in allowed:\n",
        "        if False:\n",
        ("tests/integration/test_report_triage.py", *SQLITE),
    ),
    Mutation(
        "duplicate-candidates-uncapped",
        "enrichment: a prolific author's reports are read capped, per report",
        "broadcast/reports/enrichment.py",
        "if span[0] <= at <= span[1] and span[2] < DUPLICATE_CANDIDATES:",
        "if span[0] <= at <= span[1]:",
        ("tests/integration/test_report_enrichment_batch.py::"
         "test_a_prolific_author_costs_at_most_the_capped_candidates_per_report[sqlite]",),
    ),
    Mutation(
        "twilio-signature-accepted-unchecked",
        "signature checks: Twilio webhooks",
        "channels/sms/inbound.py",
        "    return bool(RequestValidator(auth_token).validate(url, parse_form(raw_body), signature))",
        "    return True",
        ("tests/unit/sms/test_inbound.py",),
    ),
    Mutation(
        "twilio-signature-url-from-request",
        "signature checks: Twilio webhooks signed for our public URL",
        "channels/sms/inbound.py",
        "    url = public_base_url.rstrip(\"/\") + path + (f\"?{raw_query}\" if raw_query else \"\")",
        "    url = public_base_url.rstrip(\"/\") + path",
        ("tests/unit/sms/test_inbound.py",),
    ),
    Mutation(
        "partner-signature-replay-window",
        "signature checks: partner webhooks refuse replays",
        "broadcast/partners/signing.py",
        "    if abs(current - t) > tolerance_s:\n",
        "    if False:\n",
        ("tests/integration/test_partners.py::test_signed_payload_carries_valid_cap_and_replays_are_refused",),
    ),
    Mutation(
        "cap-signature-any-key",
        "signature checks: CAP signatures",
        "broadcast/cap/signing.py",
        "            except (SignXMLException, InvalidSignature, ValueError) as exc:\n"
        "                error = error or str(exc)[:300] or type(exc).__name__\n"
        "                continue\n",
        "            except (SignXMLException, InvalidSignature, ValueError) as exc:\n"
        "                error = error or str(exc)[:300] or type(exc).__name__\n",
        ("tests/unit/test_cap_signing.py",),
    ),
    Mutation(
        "jurisdiction-codes-unchecked",
        "jurisdiction: operators act only inside their boundary",
        "broadcast/authority.py",
        "            if not gazetteer.contains(jurisdiction_code, c):\n",
        "            if False:\n",
        ("tests/integration/test_alert_service.py::test_operator_cannot_target_outside_jurisdiction[sqlite]",),
    ),
    Mutation(
        "forced-mark-dropped",
        "forced marks: LATIHAN/EXERCISE/TEST on every non-Actual message",
        "channels/base.py",
        '        return f"[{mark}] {text}" if mark else text',
        "        return text",
        ("tests/unit/test_channels.py",),
    ),
    Mutation(
        "forced-mark-only-for-exercise",
        "forced marks: a Test message is marked too",
        "channels/base.py",
        "    marks = STATUS_MARKS.get(status)\n",
        '    marks = STATUS_MARKS.get(status) if status == "Exercise" else None\n',
        ("tests/unit/test_channels.py",),
    ),
)


def pytest(
    args: tuple[str, ...] | list[str], *, artifacts: Path, timeout: float, cwd: Path = ROOT, redis_db: int | None = None
) -> tuple[int, str]:
    env = dict(os.environ)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # a mutated module must never leave a .pyc behind
    env["BROADCAST_RELIABILITY_JSON"] = str(artifacts / "reliability.json")  # not this run's real table
    if cwd != ROOT:  # the lane's code also in the processes the tests start (workers, the CLI)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(cwd), env.get("PYTHONPATH", "")]))
    if redis_db is not None:  # each lane its own Redis database: the tests empty theirs
        env["BROADCAST_TEST_REDIS_URL"] = f"redis://127.0.0.1:6379/{redis_db}"
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-n", "0", "-p", "no:cacheprovider", "--durations=0",
           "--timeout=600", f"--basetemp={artifacts / ('tmp-' + cwd.name)}", *args]
    try:
        run = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, "timed out"
    lines = [line for line in run.stdout.splitlines() if line.strip()]
    return run.returncode, (lines[-1] if lines else run.stderr.strip()[-300:])


def lane_copies(tmp: Path, jobs: int) -> list[Path]:
    """One copy of the source tree per lane, so mutations run side by side without seeing each other's change:
    pytest runs with the copy as its working directory, and the copy's packages come first on sys.path."""
    skip = shutil.ignore_patterns(".venv", ".git", "test-artifacts", "__pycache__", ".mypy_cache", ".ruff_cache",
                                  "broadcast-data", "*.egg-info")
    return [Path(shutil.copytree(ROOT, tmp / f"lane{i}", ignore=skip, symlinks=True)) for i in range(jobs)]


def base_redis_db() -> int:
    url = os.environ.get("BROADCAST_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    return int(url.rsplit("/", 1)[-1] or 0)


def check_snippets(mutations: tuple[Mutation, ...]) -> list[str]:
    problems = []
    for m in mutations:
        path = ROOT / m.file
        text = path.read_text() if path.exists() else ""
        found = text.count(m.original)
        if found != 1:
            problems.append(f"{m.name}: the snippet occurs {found} times in {m.file} (expected once): the code moved "
                            f"or changed; update this mutation\n    {m.original!r}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--only", action="append", default=[], help="run only this mutation (repeatable)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per test run")
    parser.add_argument("--jobs", type=int, default=2, help="mutations run side by side, each in its own tree copy")
    args = parser.parse_args()
    mutations = tuple(m for m in MUTATIONS if not args.only or m.name in args.only)
    unknown = set(args.only) - {m.name for m in MUTATIONS}
    if unknown:
        print(f"unknown mutations: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    if args.list:
        for m in mutations:
            print(f"{m.name:38} {m.rule}\n{'':38} {m.file} | {' '.join(m.tests)}")
        return 0
    problems = check_snippets(mutations)
    if problems:
        print("MUTATION CHECK ERROR: snippets not found\n" + "\n".join(problems), file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="mutation-check-") as tmp:
        artifacts = Path(tmp)
        selections = sorted({t for m in mutations for t in m.tests if t not in SQLITE})
        started = time.monotonic()
        code, summary = pytest([*selections, *SQLITE], artifacts=artifacts, timeout=args.timeout * 3)
        print(f"unmutated: {summary} ({time.monotonic() - started:.0f} s)", flush=True)
        if code != 0:
            print("MUTATION CHECK ERROR: the selections fail without any mutation", file=sys.stderr)
            return 2
        survived = []
        print(f"\n{'mutation':38} {'rule':62} result")
        lanes: queue.Queue[tuple[Path, int]] = queue.Queue()
        for i, lane in enumerate(lane_copies(artifacts, max(1, args.jobs))):
            lanes.put((lane, base_redis_db() - i))

        def run(m: Mutation) -> None:
            lane, redis_db = lanes.get()
            try:
                path = lane / m.file
                original = path.read_text()
                started = time.monotonic()
                try:
                    path.write_text(original.replace(m.original, m.replacement, 1))
                    code, summary = pytest(m.tests, artifacts=artifacts, timeout=args.timeout, cwd=lane,
                                           redis_db=redis_db)
                finally:
                    path.write_text(original)
            finally:
                lanes.put((lane, redis_db))
            # 1: tests failed (caught). 0: all passed (survived). Anything else (no tests, usage error, timeout)
            # says nothing about the mutation: an error.
            if code == 1:
                result = "caught"
            elif code == 0:
                result = "SURVIVED"
                survived.append(m.name)
            else:
                result = f"ERROR (pytest exit {code})"
                survived.append(m.name)
            print(f"{m.name:38} {m.rule[:62]:62} {result}: {summary} ({time.monotonic() - started:.0f} s)",
                  flush=True)

        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            list(pool.map(run, mutations))
    print(f"\n{len(mutations) - len(survived)} of {len(mutations)} mutations caught")
    if survived:
        print(f"NOT CAUGHT: {', '.join(survived)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

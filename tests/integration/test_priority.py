"""A real worker on Redis takes the critical queue before routine traffic queued earlier."""

from __future__ import annotations

import time

import pytest

from broadcast.dispatch.planning import CRITICAL_QUEUE, ROUTINE_QUEUE
from broadcast.worker import celery

pytestmark = pytest.mark.integration
ORDER: list[str] = []


@celery.task(name="tests.record_order", acks_late=True)
def record_order(label: str) -> None:
    ORDER.append(label)


def test_critical_batches_run_before_routine_ones_already_waiting(redis_url):
    from celery.contrib.testing.worker import start_worker

    ORDER.clear()
    for n in range(6):
        record_order.apply_async(args=[f"routine-{n}"], queue=ROUTINE_QUEUE)
    for n in range(2):
        record_order.apply_async(args=[f"cancel-{n}"], queue=CRITICAL_QUEUE)
    with start_worker(celery, pool="solo", perform_ping_check=False, queues=[CRITICAL_QUEUE, ROUTINE_QUEUE],
                      shutdown_timeout=30):
        deadline = time.monotonic() + 30
        while len(ORDER) < 8 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert ORDER[:2] == ["cancel-0", "cancel-1"]
    assert sorted(ORDER[2:]) == [f"routine-{n}" for n in range(6)]

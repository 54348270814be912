"""Pure fan-out planning: batching and retry backoff."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence

MAX_ATTEMPTS = 8
DEFAULT_BATCH = 200
# Workers drain `critical` before `broadcast` (Redis transport, queue_order_strategy=priority).
CRITICAL_QUEUE = "critical"
ROUTINE_QUEUE = "broadcast"
QUEUES = (CRITICAL_QUEUE, ROUTINE_QUEUE)
# Citizen-driven work (report enrichment, polling, replies) runs on its own queue and its own worker pool, so no
# amount of it can hold a process the warnings need.
INTAKE_QUEUE = "intake"


def queue_for(*, msg_type: str, severity: str, urgency: str) -> str:
    """Cancels, updates and Extreme+Immediate warnings go ahead of routine traffic and of every retry."""
    if msg_type in ("Update", "Cancel") or (severity == "Extreme" and urgency == "Immediate"):
        return CRITICAL_QUEUE
    return ROUTINE_QUEUE


def batches(ids: Sequence[int], size: int) -> Iterator[list[int]]:
    """Consecutive chunks of at most `size` ids."""
    if size < 1:
        raise ValueError("batch size must be positive")
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


def pages(ids: Sequence[int], *, first: int, size: int) -> Iterator[Sequence[int]]:
    """Consecutive slices of `ids`: the first of at most `first`, the rest of at most `size`."""
    if first < 1 or size < 1:
        raise ValueError("page sizes must be positive")
    if ids:
        yield ids[:first]
    for start in range(first, len(ids), size):
        yield ids[start : start + size]


def lead_batches(ids: Sequence[int], size: int, *, lead: bool, lead_size: int = 100) -> Iterator[list[int]]:
    """`batches(ids, size)`, except that with `lead` the first `size` ids go in batches of `lead_size`: a
    fan-out's first messages leave sooner (a short claim and render, every worker process busy at once)."""
    if not lead or size <= lead_size:
        yield from batches(ids, size)
        return
    yield from batches(ids[:size], lead_size)
    yield from batches(ids[size:], size)


def backoff(retries: int, *, base_s: float = 2.0, cap_s: float = 300.0) -> float:
    """Exponential backoff for the n-th retry, capped well under the broker's visibility timeout."""
    return float(min(cap_s, base_s * (2**retries)))


def jittered(delay_s: float, *, spread: float = 0.25, rng: Callable[[], float] = random.random) -> float:
    """`delay_s` stretched by up to `spread` at random, never shortened: retries of one failed burst (a 429 to
    every worker at once) spread out instead of hitting the provider together again."""
    return delay_s * (1.0 + spread * rng())


def retry_countdown(retries: int, retry_after: float | None, *, cap_s: float = 3600.0) -> float:
    """Seconds before the n-th retry: the backoff, or longer when the provider asked us to wait (capped
    under the broker's visibility timeout, so a far-off reset cannot make Redis redeliver the task)."""
    wait = backoff(retries)
    if retry_after is not None and retry_after > wait:
        wait = float(retry_after)
    return min(wait, cap_s)

"""Pure fan-out planning: batching, queues, retry backoff, and which channel a person is tried on next."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any

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


# A person's delivery that ended without reaching them: their next channel is tried.
GIVEN_UP_STATES = ("failed", "undelivered", "skipped")


def person_order(chosen: Sequence[str] | None, reachable: Collection[str]) -> list[str]:
    """The channels one person gets an alert on, preferred first: their own order, kept to the alert's personal
    channels they have an address on (`reachable`), each once."""
    return list(dict.fromkeys(c for c in chosen or () if c in reachable))


def reachable_on(row: Mapping[Any, Any], addresses: Mapping[str, str]) -> set[str]:
    """The channels of `addresses` (channel -> Subscriber attribute) a subscriber row has an address for."""
    return {channel for channel, attribute in addresses.items() if row.get(attribute) is not None}


def choose_channels(order: Sequence[str], *, all_channels: bool, room: dict[str, int]) -> list[str]:
    """The channels planned at once for one person: only the preferred one, unless they asked for every
    channel, minding what each channel can still send within the send deadline: `room` holds the people a paced
    channel can still take (absent: no limit). The first channel of their order with room is chosen and its room
    taken; when none has room, the preferred one (the person still gets one message, late). Someone who asked for
    every channel gets them all, room or not."""
    if all_channels:
        return list(order)
    for channel in order:
        left = room.get(channel)
        if left is None or left > 0:
            if left is not None:
                room[channel] = left - 1
            return [channel]
    return list(order[:1])


# Paced batches are spaced this much slower than the channel's rate (a batch's claim, render and record take time
# too: spaced at the bare rate, batches overlap, compete for the same tokens and pile up on the worker's processes),
# and planning gives a paced channel only what it sends at that pace by the deadline.
PACING_SLACK = 1.25


def send_room(rates: Mapping[str, float], deadline_s: float) -> dict[str, int]:
    """People each paced channel can send to within `deadline_s` of planning, at its sustained rate (with slack)."""
    if deadline_s <= 0:
        return {}
    return {name: max(1, int(rate * deadline_s / PACING_SLACK)) for name, rate in rates.items()}


def paced_batch(rate: float, size: int, *, hold_s: float = 2.0) -> int:
    """Batch size for a channel sending at `rate` per second: at most what it sends in `hold_s`, so a batch of a
    slow channel (a WhatsApp sender, a Telegram bot) holds a worker process for seconds, not minutes, and SMS
    batches queued behind it are not starved."""
    return max(1, min(size, math.ceil(rate * hold_s)))


def has_fallback(order: Sequence[str], channel: str, *, all_channels: bool) -> bool:
    """Whether a delivery on `channel` has a next channel to fall back to (never for someone who asked for all)."""
    return not all_channels and channel in order and order.index(channel) < len(order) - 1


def next_channel(order: Sequence[str], rows: Sequence[tuple[int, str, str]], *, due_id: int) -> str | None:
    """The channel to try next for one person, given their deliveries of the alert as (id, channel, state) and the
    row `due_id` whose fallback time came: none if any row reached them (delivered), if a later row exists (that
    one decides), or if `due_id` is still under way; else the first channel of `order` without a row."""
    if not rows or max(r[0] for r in rows) != due_id:
        return None
    if any(state == "delivered" for _, _, state in rows):
        return None
    due_state = next(state for rid, _, state in rows if rid == due_id)
    if due_state not in (*GIVEN_UP_STATES, "sent"):
        return None  # pending or sending again: wait for its outcome
    used = {channel for _, channel, _ in rows}
    return next((c for c in order if c not in used), None)

"""Sending a claimed batch within the providers' limits: shared token buckets, 429 resets, in-doubt
reconciliation, and the alert's state asked again as messages leave (a cancel stops the rest)."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from broadcast.dispatch.claims import ClaimedBatch, ClaimedItem
from broadcast.dispatch.ratelimit import Bucket, RateLimiter
from channels.base import Channel, OutboundMessage, Outcome, RecipientCap, SendResult

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Sent:
    item: ClaimedItem
    result: SendResult
    text: str
    mode: str
    held: bool = False  # never handed to the provider: a rate limit held it back
    skipped: bool = False  # never handed to the provider: the alert stopped being live during the batch


STOPPED = "alert cancelled or expired during the batch"


# After a cancel or expiry is committed, at most CHECK_EVERY requests leave a worker process, those already in
# flight included (with max_concurrency ≤ CHECK_EVERY / 2): the state is read again every READ_EVERY messages,
# and every CHECK_EVERY_S seconds (a paced send may wait for tokens in between).
CHECK_EVERY = 100
READ_EVERY = CHECK_EVERY // 2
CHECK_EVERY_S = 1.0


class LiveCheck:
    """The `proceed` a channel asks before each message: reads the alert's state again every READ_EVERY
    messages or CHECK_EVERY_S seconds (a paced send may wait for tokens) and stays False once the alert stopped
    being live. Between two reads a channel keeps its requests flowing instead of draining its pipeline."""

    def __init__(
        self, still_live: Callable[[], bool], *, every: int = READ_EVERY, every_s: float = CHECK_EVERY_S
    ) -> None:
        self._still_live, self._every, self._every_s = still_live, every, every_s
        self._count = 0
        self._checked_at = time.monotonic()
        self.stopped = False

    def __call__(self) -> bool:
        if self.stopped:
            return False
        self._count += 1
        if self._count > self._every or time.monotonic() - self._checked_at >= self._every_s:
            self._count, self._checked_at = 1, time.monotonic()
            self.stopped = not self._still_live()
        return not self.stopped


def _take_tokens(
    channel: Channel, messages: list[OutboundMessage], limiter: RateLimiter, *, deadline: float
) -> tuple[list[OutboundMessage], list[SendResult], list[OutboundMessage]]:
    """Take the provider's tokens for what can go now, from the shared Redis buckets: one script call per set of
    buckets (a sender number with its account, say) for as many of its messages as its smallest burst holds.

    Returns the messages to send now, those held (RETRY with the wait: their buckets will not have the tokens
    before `deadline`) and the rest, to try again once these are sent. Tokens are taken just before the send:
    a set never gets a second helping before the first went out, so no second sees more than its limit. When
    no set can go yet, it sleeps for the shortest wait, so a slow sender holds up only its own messages."""
    groups: dict[tuple[str, ...], tuple[list[Bucket], list[tuple[OutboundMessage, int]]]] = {}
    ready: list[OutboundMessage] = []
    for message in messages:
        buckets, cost = channel.rate_buckets(message)
        if not buckets:
            ready.append(message)
            continue
        redis_buckets = [Bucket(b.key, b.rate, b.burst) for b in buckets]
        cost = max(1, min([cost, *(int(b.burst) for b in buckets)]))  # a thread longer than a cap goes at its cap
        key = tuple(b.key for b in redis_buckets)
        groups.setdefault(key, (redis_buckets, []))[1].append((message, cost))
    held: list[SendResult] = []
    later: list[OutboundMessage] = []
    while groups:
        waits: list[float] = []
        for key, (group, wanted) in list(groups.items()):
            cap = int(min(b.burst for b in group))
            n = need = 0
            while n < len(wanted) and (n == 0 or need + wanted[n][1] <= cap):  # as much as one call may take
                need += wanted[n][1]
                n += 1
            wait = limiter.try_acquire(group, need)
            if not wait:
                ready += [m for m, _ in wanted[:n]]
                later += [m for m, _ in wanted[n:]]
                del groups[key]
            elif time.monotonic() + wait > deadline:
                error = f"rate limit: waiting for the provider's limit ({wait:.0f} s)"
                held += [SendResult(m.reference, Outcome.RETRY, error=error, retry_after=wait) for m, _ in wanted]
                del groups[key]
            else:
                waits.append(wait)
        if ready or not groups:
            break
        time.sleep(min(waits))
    later += [m for _, wanted in groups.values() for m, _ in wanted]
    return ready, held, later


def _pace_size(channel: Channel, messages: Sequence[OutboundMessage], limiter: RateLimiter | None) -> int:
    """How many messages a paced step considers together: at most the smallest burst of the buckets they all
    share (the account's), so one step never puts more on the wire than that bucket holds; the whole batch when
    nothing limits it (the alert's state is checked between messages, see LiveCheck). A sender's own, smaller
    burst does not bound it: `_take_tokens` gives each set of buckets one helping per send, so a step spread over
    a pool of 1/s numbers sends one message per number at a time, side by side."""
    if not messages or limiter is None or channel.mode != "live":
        return max(1, len(messages))
    sets = [channel.rate_buckets(m)[0] for m in messages]
    bursts = {b.key: b.burst for buckets in sets for b in buckets}
    shared = set.intersection(*({b.key for b in buckets} for buckets in sets))
    bound = [bursts[k] for k in shared] or list(bursts.values())
    return max(1, min([len(messages), *(int(b) for b in bound)]))


def _reconcile(
    channel: Channel, messages: list[OutboundMessage], items: list[ClaimedItem]
) -> tuple[list[OutboundMessage], list[SendResult]]:
    """Rows a dead worker left in doubt are checked with the provider first: what it already accepted is
    recorded as sent, not sent again."""
    doubt = {str(i.delivery_id): i.in_doubt_since for i in items if i.in_doubt_since is not None}
    if not doubt:
        return messages, []
    remaining, done = [], []
    for message in messages:
        since = doubt.get(message.reference)
        provider_id = channel.reconcile(message, since=since - timedelta(seconds=5)) if since else None
        if provider_id:
            log.info(
                "delivery %s: already accepted by the provider as %s; not sent again", message.reference, provider_id
            )
            done.append(SendResult(message.reference, Outcome.SENT, provider_id=provider_id))
        else:
            remaining.append(message)
    return remaining, done


def _honour_retry_after(
    channel: Channel, messages: list[OutboundMessage], results: list[SendResult], limiter: RateLimiter | None
) -> None:
    """A provider's 429 reset blocks the buckets it meant (the channel says which) for every worker, not just
    this retry; each bucket once, for the longest wait asked."""
    if limiter is None:
        return
    by_ref = {m.reference: m for m in messages}
    blocks: dict[str, tuple[Bucket, float]] = {}
    for result in results:
        if result.outcome is Outcome.RETRY and result.retry_after and result.reference in by_ref:
            for b in channel.retry_after_buckets(by_ref[result.reference]):
                if b.key not in blocks or blocks[b.key][1] < result.retry_after:
                    blocks[b.key] = (Bucket(b.key, b.rate, b.burst), result.retry_after)
    for bucket, seconds in blocks.values():
        limiter.block_for(bucket, seconds)


def _within_recipient_cap(
    cap: RecipientCap, messages: list[OutboundMessage], limiter: RateLimiter
) -> tuple[list[OutboundMessage], list[SendResult]]:
    """The messages the provider's cap on distinct recipients (WhatsApp's messaging tier) lets through now, and
    the rest as FAILED: the cap frees up only over hours, so another channel should carry them instead."""
    admitted = limiter.admit(cap, [m.recipient for m in messages])
    error = f"recipient cap {cap.key} reached ({cap.limit} people per {cap.window_s / 3600:g} h)"
    refused = [
        SendResult(m.reference, Outcome.FAILED, error=error) for m, ok in zip(messages, admitted, strict=True) if not ok
    ]
    return [m for m, ok in zip(messages, admitted, strict=True) if ok], refused


def send_claimed(
    batch: ClaimedBatch,
    *,
    channels: Mapping[str, Channel],
    limiter: RateLimiter | None = None,
    still_live: Callable[[], bool] | None = None,
    max_wait_s: float = 15.0,
) -> list[Sent]:
    """Render and send every claimed item through its channel, within the providers' limits (Redis token
    buckets shared by every worker, when a limiter is given, waiting up to `max_wait_s` for them); holds no
    database session. Every READ_EVERY messages or CHECK_EVERY_S seconds `still_live` is asked again (the
    channel asks before each message): once the alert is cancelled or expired no further request leaves, only
    those already in flight complete, and the rest come back `skipped`."""
    if batch.alert is None:
        return []
    by_channel: dict[str, list[ClaimedItem]] = defaultdict(list)
    for item in batch.items:
        by_channel[item.channel].append(item)
    out: list[Sent] = []
    deadline = time.monotonic() + max_wait_s
    proceed = LiveCheck(still_live) if still_live is not None else None
    for name, items in by_channel.items():
        channel = channels.get(name)
        if channel is None:
            out += [
                Sent(i, SendResult(i.recipient.key, Outcome.RETRY, error=f"channel {name} not enabled"), "", "")
                for i in items
            ]
            continue
        messages = channel.render(batch.alert, [i.recipient for i in items])
        messages, reconciled = _reconcile(channel, messages, items)
        results: dict[str, SendResult] = {r.reference: r for r in reconciled}
        held_refs: set[str] = set()
        skipped_refs: set[str] = set()
        paced = limiter is not None and channel.mode == "live"
        if paced and limiter is not None and channel.recipient_cap is not None:
            messages, capped = _within_recipient_cap(channel.recipient_cap, messages, limiter)
            results.update((r.reference, r) for r in capped)
        prepare = getattr(channel, "prepare", None)
        if paced and callable(prepare):
            # Open the provider's client before taking tokens: a token taken and then spent waiting for a client
            # to be built lets that request reach the provider late, bunched up with the next one.
            prepare()
        step = _pace_size(channel, messages, limiter)
        for start in range(0, len(messages), step):
            todo = messages[start : start + step]
            while todo:  # one send per helping of tokens; without a limiter, the whole step at once
                if proceed is not None and proceed.stopped:
                    skipped_refs.update(m.reference for m in todo)
                    break
                ready, held, todo = (
                    _take_tokens(channel, todo, limiter, deadline=deadline) if paced and limiter else (todo, [], [])
                )
                sent_results = channel.send_many(ready, proceed=proceed) if ready else []
                _honour_retry_after(channel, ready, sent_results, limiter)
                held_refs.update(r.reference for r in held)
                skipped_refs.update(r.reference for r in sent_results if r.stopped)
                results.update((r.reference, r) for r in [*sent_results, *held])
        texts = {m.reference: "\n\n".join((m.text, *m.thread)) for m in messages}
        for item in items:
            ref = item.recipient.key
            if ref in skipped_refs:
                out.append(Sent(item, SendResult(ref, Outcome.RETRY, error=STOPPED), "", channel.mode, skipped=True))
                continue
            result = results.get(ref) or SendResult(ref, Outcome.RETRY, error="no result from channel")
            out.append(Sent(item, result, texts.get(ref, ""), channel.mode, held=ref in held_refs))
    return out

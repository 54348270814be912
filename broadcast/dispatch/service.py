"""Fan-out use cases: plan delivery rows, claim a batch, record outcomes, sweep stragglers."""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Boolean, and_, any_, bindparam, case, func, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, aliased

from broadcast.alerts import rules, target_area
from broadcast.alerts import service as alerts
from broadcast.alerts.models import Alert, AlertState, MsgType
from broadcast.db import table_of, utcnow
from broadcast.dispatch import planning
from broadcast.dispatch.models import REACHED_STATES, Delivery, DeliveryState, OutboxMessage
from broadcast.dispatch.planning import MAX_ATTEMPTS
from broadcast.dispatch.ratelimit import Bucket, RateLimiter
from broadcast.subscribers import targeting, warm
from broadcast.subscribers.models import Subscriber
from channels.base import (
    AlertData,
    Audience,
    Channel,
    OutboundMessage,
    Outcome,
    Recipient,
    RecipientCap,
    SendResult,
)
from channels.registry import audience_of, get_spec

log = logging.getLogger(__name__)
_DELIVERIES = table_of(Delivery)


def _insert(session: Session, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def _insert_ignore(session: Session, model: Any, rows: list[dict[str, Any]], keys: list[str]) -> None:
    if rows:
        session.execute(_insert(session, model).on_conflict_do_nothing(index_elements=keys), rows)


def _among(session: Session, column: Any, ids: Sequence[int]) -> Any:
    """`column IN (ids)`; on PostgreSQL `column = ANY(array)`: one parameter instead of one per id, so psycopg
    and the server parse a short statement whatever the batch size."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(literal(list(ids), type_=postgresql.ARRAY(column.type)))
    return column.in_(list(ids))


FIRST_PAGE = 500  # subscribers read for the first planned rows of a fan-out


def plan_alert(session: Session, *, alert_id: int) -> dict[str, list[int]]:
    """Create one delivery per targeted recipient and channel (idempotent); publish the alert.

    Subscribers are matched against the areas' codes and drawn geometry (subscribers.targeting); a personal
    channel reaches only subscribers who chose it. An Update or Cancel first reaches everyone the original
    reached; a Cancel reaches no one else. Returns the pending delivery ids per channel. A non-live alert plans nothing.
    """
    planned: dict[str, list[int]] = defaultdict(list)
    for part in plan_alert_stream(session, alert_id=alert_id):
        for channel, ids in part.items():
            planned[channel] += ids
    return {channel: sorted(ids) for channel, ids in planned.items()}


def plan_alert_stream(session: Session, *, alert_id: int, chunk: int = 5000) -> Iterator[dict[str, list[int]]]:
    """`plan_alert` in steps: yields the pending delivery ids per channel as each chunk of rows is flushed, so
    the caller can commit and enqueue the first batches before the last rows exist. Every pending id of the
    alert is yielded exactly once (rows an earlier run created come last). The publish comes alone, as an empty
    first part, before any targeting: public pages and feeds show the alert first, and a cancel arriving during
    planning already finds it live; `planned_at` is set with the last part (the sweep re-plans a published
    alert without it)."""
    alert = session.scalar(select(Alert).where(Alert.id == alert_id).with_for_update())
    if alert is None or not alerts.is_live(alert):
        return
    if alert.state == AlertState.APPROVED.value:
        alerts.mark_published(session, alert=alert)
        yield {}  # visible first: the caller commits the publish before any targeting (public pages, feeds)
    table = Delivery.__table__
    insert = (
        _insert(session, table)
        .on_conflict_do_nothing(index_elements=["alert_id", "channel", "recipient_key"])
        .returning(table.c.id)
    )
    yielded: set[int] = set()

    bulk = _unnest_insert(table) if session.get_bind().dialect.name == "postgresql" else None

    def add(channel: str, rows: list[dict[str, Any]]) -> dict[str, list[int]]:
        if not rows:
            ids: list[int] = []
        elif bulk is not None:
            ids = list(session.scalars(bulk, _unnest_params(rows)))
        else:
            ids = list(session.scalars(insert, rows))
        yielded.update(ids)
        return {channel: sorted(ids)} if ids else {}

    target = target_area.target_of(alert)
    public_lang = alert.infos[0].language if alert.infos else "id-ID"
    follow_up = alert.references_alert_id is not None and alert.msg_type in (MsgType.UPDATE, MsgType.CANCEL)
    targeted: list[str] = []  # personal channels that also reach fresh targeting results
    for channel in alert.channels:
        if audience_of(channel) is Audience.PUBLIC:
            row = {"alert_id": alert.id, "channel": channel, "recipient_key": "public", "language": public_lang}
            yield add(channel, [row])
            continue
        if follow_up:
            reached = session.execute(
                select(Delivery.recipient_key, Delivery.subscriber_id, Delivery.language)
                .where(
                    Delivery.alert_id == alert.references_alert_id,
                    Delivery.channel == channel,
                    Delivery.state.in_(REACHED_STATES),
                )
                .order_by(Delivery.id)
            ).all()
            for start in range(0, len(reached), chunk):
                rows = [
                    {
                        "alert_id": alert.id,
                        "channel": channel,
                        "recipient_key": r.recipient_key,
                        "subscriber_id": r.subscriber_id,
                        "language": r.language,
                    }
                    for r in reached[start : start + chunk]
                ]
                yield add(channel, rows)
            if alert.msg_type == MsgType.CANCEL:
                continue
        targeted.append(channel)
    scope_ok, scope = delivery_scope(session, alert)
    if targeted and scope_ok:
        spec = targeting.TargetSpec(target.codes, target.drawn)
        subs = warm.snapshot(session)
        # Jurisdiction is a property of the recipient set: nobody outside it is ever planned, whatever the area.
        matched = subs.within(subs.match(spec), scope)
        # Only the matched subscribers' rows are read, in pages by ascending id (a small first one: the first
        # batches leave while later pages are still being read and written), so planning costs what the
        # recipients cost, not the table. The rows decide who is still active and on which channel.
        for page in planning.pages(matched.tolist(), first=FIRST_PAGE, size=chunk):
            found = session.execute(
                select(Subscriber.id, Subscriber.language, Subscriber.channels)
                .where(_among(session, Subscriber.id, page), Subscriber.active.is_(True))
                .order_by(Subscriber.id)
            ).all()
            for channel in targeted:
                rows = [
                    {
                        "alert_id": alert.id,
                        "channel": channel,
                        "recipient_key": f"sub:{sid}",
                        "subscriber_id": sid,
                        "language": lang,
                    }
                    for sid, lang, chans in found
                    if channel in (chans or ())
                ]
                if rows:
                    yield add(channel, rows)
    pending = session.execute(
        select(Delivery.channel, Delivery.id)
        .where(Delivery.alert_id == alert.id, Delivery.state == DeliveryState.PENDING.value)
        .order_by(Delivery.id)
    )
    leftover: dict[str, list[int]] = defaultdict(list)
    for channel, delivery_id in pending:
        if delivery_id not in yielded:
            leftover[channel].append(delivery_id)
    alert.planned_at = utcnow()
    session.flush()
    log.info("alert %s planned: %d new rows, %d earlier", alert.id, len(yielded), sum(map(len, leftover.values())))
    yield dict(leftover)  # possibly empty: the caller commits planned_at with it


def delivery_scope(session: Session, alert: Alert) -> tuple[bool, str | None]:
    """The jurisdiction an alert's fresh recipients must lie in: its approver's, who authorised the send (its
    author's while it has none; None: national). Every area the authors wrote was checked against theirs; this
    holds the recipient set to it whatever the area turns out to reach. (False, None): nobody to vouch for it."""
    from broadcast.users.models import User

    person_id = alert.approver_id if alert.approver_id is not None else alert.author_id
    person = session.get(User, person_id) if person_id is not None else None
    if person is None:
        return False, None
    return True, person.jurisdiction


_PLANNED_COLUMNS = ("alert_id", "channel", "recipient_key", "subscriber_id", "language")


def _unnest_insert(table: Any) -> Any:
    """PostgreSQL: one INSERT … SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING RETURNING id for a whole chunk
    of rows. Five array parameters instead of five placeholders per row: psycopg parses (and PostgreSQL plans)
    a short statement, not one with thousands of placeholders per 1,000 rows."""
    c = table.c
    rows = (
        func.unnest(
            bindparam("p_alert", type_=postgresql.ARRAY(c.alert_id.type)),
            bindparam("p_channel", type_=postgresql.ARRAY(c.channel.type)),
            bindparam("p_key", type_=postgresql.ARRAY(c.recipient_key.type)),
            bindparam("p_sub", type_=postgresql.ARRAY(c.subscriber_id.type)),
            bindparam("p_lang", type_=postgresql.ARRAY(c.language.type)),
        )
        .table_valued(*_PLANNED_COLUMNS)
        .render_derived(name="planned")
    )
    now = bindparam("p_now", type_=c.created_at.type)
    source = select(
        *(rows.c[name] for name in _PLANNED_COLUMNS),
        literal(DeliveryState.PENDING.value, type_=c.state.type),
        literal(0, type_=c.attempts.type),
        now,
        now,
    )
    return (
        postgresql.insert(table)
        .from_select([*_PLANNED_COLUMNS, "state", "attempts", "created_at", "updated_at"], source)
        .on_conflict_do_nothing(index_elements=["alert_id", "channel", "recipient_key"])
        .returning(c.id)
    )


def _unnest_params(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "p_alert": [r["alert_id"] for r in rows],
        "p_channel": [r["channel"] for r in rows],
        "p_key": [r["recipient_key"] for r in rows],
        "p_sub": [r.get("subscriber_id") for r in rows],
        "p_lang": [r.get("language", "id") for r in rows],
        "p_now": utcnow(),
    }


def is_alert_live(session: Session | Connection, *, alert_id: int) -> bool:
    """True while the alert may still be delivered (checked within long batches: a cancel stops them)."""
    # Two columns, not the alert with its infos and areas, and a plain connection will do: this runs every
    # CHECK_EVERY messages.
    row = session.execute(select(Alert.state, Alert.expires).where(Alert.id == alert_id)).first()
    if row is None or AlertState(row.state) not in rules.LIVE_STATES:
        return False
    return row.expires is None or row.expires > utcnow()


@dataclass(frozen=True, slots=True)
class ClaimedItem:
    delivery_id: int
    channel: str
    recipient: Recipient
    # When a dead worker's claim on this row began: its send may or may not have reached the provider.
    in_doubt_since: datetime | None = None


@dataclass
class ClaimedBatch:
    alert: AlertData | None = None
    items: list[ClaimedItem] = field(default_factory=list)


def claim(session: Session, *, delivery_ids: Sequence[int], lease_s: int, public_base_url: str) -> ClaimedBatch:
    """Atomically move these deliveries from pending (or an expired lease) to sending.

    Rows of an alert that is no longer live, or of subscribers who stopped, are skipped instead.
    A row another worker holds, or one already sent, is not returned: this is what makes a
    redelivered task harmless.
    """
    now = utcnow()
    claimable = or_(
        Delivery.state == DeliveryState.PENDING.value,
        and_(Delivery.state == DeliveryState.SENDING.value, Delivery.lease_until < now),
    )
    mine = _among(session, Delivery.id, delivery_ids)
    doubt_stmt = select(Delivery.id, Delivery.updated_at).where(
        mine, Delivery.state == DeliveryState.SENDING.value, Delivery.lease_until < now
    )
    in_doubt = {did: claimed_at for did, claimed_at in session.execute(doubt_stmt)}
    rows = session.execute(
        update(Delivery)
        .where(mine, claimable)
        .values(
            state=DeliveryState.SENDING.value,
            lease_until=now + timedelta(seconds=lease_s),
            attempts=Delivery.attempts + 1,
            updated_at=now,
        )
        .returning(
            Delivery.id,
            Delivery.alert_id,
            Delivery.channel,
            Delivery.recipient_key,
            Delivery.subscriber_id,
            Delivery.language,
        )
    ).all()
    if not rows:
        return ClaimedBatch()
    alert_ids = {r.alert_id for r in rows}
    if len(alert_ids) != 1:
        raise ValueError("a batch must hold deliveries of one alert")
    alert = alerts.get_alert(session, alert_id=alert_ids.pop())
    if not alerts.is_live(alert):
        skip(session, delivery_ids=[r.id for r in rows], reason=f"alert {alert.state}, not live")
        return ClaimedBatch()
    sub_ids = [r.subscriber_id for r in rows if r.subscriber_id is not None]
    # Each personal channel names the subscriber attribute its address is in (phone, Telegram chat id, …).
    fields = sorted({get_spec(r.channel).subscriber_address for r in rows if r.subscriber_id is not None})
    addresses: dict[tuple[int, str], str] = {}
    if sub_ids:
        active = Subscriber.active.is_(True)
        columns = [getattr(Subscriber, f) for f in fields]
        stmt = select(Subscriber.id, *columns).where(_among(session, Subscriber.id, sub_ids), active)
        for sid, *values in session.execute(stmt):
            addresses.update({(sid, f): str(v) for f, v in zip(fields, values, strict=True) if v is not None})
    data = alerts.to_alert_data(alert, public_base_url=public_base_url)
    data = replace(data, **_public_post_extras(session, alert, channels={r.channel for r in rows}))
    batch = ClaimedBatch(alert=data)
    stopped = []
    for r in rows:
        if r.subscriber_id is not None:
            address = addresses.get((r.subscriber_id, get_spec(r.channel).subscriber_address))
            if address is None:
                stopped.append(r.id)
                continue
        else:
            address = data.public_url
        batch.items.append(ClaimedItem(r.id, r.channel, Recipient(str(r.id), address, r.language), in_doubt.get(r.id)))
    if stopped:
        skip(session, delivery_ids=stopped, reason="subscriber stopped")
    return batch


def _public_post_extras(session: Session, alert: Alert, *, channels: set[str]) -> dict[str, Any]:
    """For public posts: the area map, and the original's post ids an update or cancel replies to."""
    extras: dict[str, Any] = {}
    if any(audience_of(c) is Audience.PUBLIC and c != "web" for c in channels):
        try:
            extras["map_png"] = target_area.map_png(alert)
        except Exception:  # a map is a nicety: never let it stop a warning going out
            log.exception("map image for alert %s failed", alert.id)
    if alert.references_alert_id is not None:
        stmt = select(Delivery.channel, Delivery.provider_id).where(
            Delivery.alert_id == alert.references_alert_id,
            Delivery.recipient_key == "public",
            Delivery.provider_id.is_not(None),
        )
        extras["original_provider_ids"] = {channel: pid for channel, pid in session.execute(stmt)}
    return extras


def queue_of(session: Session, *, alert_id: int) -> str:
    """The Celery queue an alert's batches go to (critical for cancels, updates, Extreme+Immediate)."""
    alert = session.get(Alert, alert_id)
    if alert is None or not alert.infos:
        return planning.ROUTINE_QUEUE
    first = alert.infos[0]
    return planning.queue_for(msg_type=alert.msg_type, severity=first.severity, urgency=first.urgency)


def skip(session: Session, *, delivery_ids: Sequence[int], reason: str) -> None:
    """Mark deliveries skipped: they will never be sent."""
    session.execute(
        update(Delivery)
        .where(Delivery.id.in_(list(delivery_ids)))
        .values(state=DeliveryState.SKIPPED.value, error=reason, lease_until=None, updated_at=utcnow())
    )


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


def record_results(session: Session, *, sent: Sequence[Sent]) -> list[int]:
    """Store each outcome (and the outbox copy); return the ids to retry later."""
    now = utcnow()
    retry: list[int] = []
    outbox_rows = []
    attempts: dict[int, int] = {}
    if sent:
        ids = [s.item.delivery_id for s in sent]
        stmt = select(Delivery.id, Delivery.attempts).where(_among(session, Delivery.id, ids))
        attempts = {did: n for did, n in session.execute(stmt)}
    outcomes: list[dict[str, Any]] = []
    held: list[dict[str, Any]] = []
    in_doubt: list[dict[str, Any]] = []
    for s in sent:
        did = s.item.delivery_id
        row: dict[str, Any] = {"b_id": did, "b_error": s.result.error, "b_pid": None, "b_sent": None}
        if s.result.outcome is Outcome.SENT:
            row |= {"b_state": DeliveryState.SENT.value, "b_pid": s.result.provider_id, "b_sent": now, "b_error": None}
            if s.mode == "outbox":
                outbox_rows.append(
                    {
                        "delivery_id": did,
                        "channel": s.item.channel,
                        "recipient": s.item.recipient.address,
                        "text": s.text,
                        "created_at": now,
                    }
                )
        elif s.skipped:
            row["b_state"] = DeliveryState.SKIPPED.value
        elif s.held:
            held.append({"b_id": did, "b_error": s.result.error})
            retry.append(did)
            continue
        elif s.result.outcome is Outcome.FAILED or attempts.get(did, 0) >= MAX_ATTEMPTS:
            row["b_state"] = DeliveryState.FAILED.value
        elif s.result.in_doubt:
            # The provider may hold it (a timeout): keep the row `sending` with its lease ended and its claim
            # time, so the next claim treats it as in doubt and reconciles before sending again.
            in_doubt.append({"b_id": did, "b_error": s.result.error})
            retry.append(did)
            continue
        else:
            row["b_state"] = DeliveryState.PENDING.value
            retry.append(did)
        outcomes.append(row)
    conn = session.connection()
    # One statement for the whole batch (executemany); only rows we still hold: a row whose lease was taken
    # over by another worker is not ours to overwrite.
    mine = and_(Delivery.id == bindparam("b_id"), Delivery.state == DeliveryState.SENDING.value)
    if outcomes and conn.dialect.name == "postgresql":
        conn.execute(_unnest_outcomes(), _outcome_arrays(outcomes, now))
    elif outcomes:
        conn.execute(
            update(_DELIVERIES)
            .where(mine)
            .values(
                state=bindparam("b_state"),
                provider_id=func.coalesce(bindparam("b_pid", type_=Delivery.provider_id.type), Delivery.provider_id),
                sent_at=func.coalesce(bindparam("b_sent", type_=Delivery.__table__.c.sent_at.type), Delivery.sent_at),
                error=bindparam("b_error"),
                lease_until=None,
                updated_at=now,
            ),
            outcomes,
        )
    if held:
        # Waiting for a provider limit is not an attempt: a day-long cap must not use up the retries.
        conn.execute(
            update(_DELIVERIES)
            .where(mine)
            .values(
                state=DeliveryState.PENDING.value,
                error=bindparam("b_error"),
                attempts=Delivery.attempts - 1,
                lease_until=None,
                updated_at=now,
            ),
            held,
        )
    if in_doubt:
        # updated_at stays the claim time: reconciliation looks for the provider's messages since then.
        conn.execute(update(_DELIVERIES).where(mine).values(error=bindparam("b_error"), lease_until=now), in_doubt)
    _insert_ignore(session, OutboxMessage, outbox_rows, ["delivery_id"])
    return retry


def _unnest_outcomes() -> Any:
    """PostgreSQL: every outcome of a batch in one UPDATE … FROM unnest(arrays), instead of one UPDATE per row
    (executemany): less work for psycopg and for the server. Same rule: only rows still `sending` (ours)."""
    t = _DELIVERIES
    u = (
        func.unnest(
            bindparam("u_id", type_=postgresql.ARRAY(t.c.id.type)),
            bindparam("u_state", type_=postgresql.ARRAY(t.c.state.type)),
            bindparam("u_pid", type_=postgresql.ARRAY(t.c.provider_id.type)),
            bindparam("u_sent", type_=postgresql.ARRAY(Boolean())),
            bindparam("u_error", type_=postgresql.ARRAY(t.c.error.type)),
        )
        .table_valued("id", "state", "pid", "sent", "error")
        .render_derived(name="outcome")
    )
    now = bindparam("u_now", type_=t.c.updated_at.type)
    return (
        update(t)
        .where(t.c.id == u.c.id, t.c.state == DeliveryState.SENDING.value)
        .values(
            state=u.c.state,
            provider_id=func.coalesce(u.c.pid, t.c.provider_id),
            sent_at=case((u.c.sent, now), else_=t.c.sent_at),
            error=u.c.error,
            lease_until=None,
            updated_at=now,
        )
    )


def _outcome_arrays(outcomes: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
    return {
        "u_id": [o["b_id"] for o in outcomes],
        "u_state": [o["b_state"] for o in outcomes],
        "u_pid": [o["b_pid"] for o in outcomes],
        "u_sent": [o["b_sent"] is not None for o in outcomes],
        "u_error": [o["b_error"] for o in outcomes],
        "u_now": now,
    }


def retry_after_hint(sent: Sequence[Sent], retry_ids: Sequence[int]) -> float | None:
    """The longest wait a provider asked for among the deliveries to retry; None when none asked."""
    wanted = set(retry_ids)
    hints = [s.result.retry_after for s in sent if s.item.delivery_id in wanted and s.result.retry_after is not None]
    return max(hints) if hints else None


@dataclass
class SweepPlan:
    fanout_alert_ids: list[int] = field(default_factory=list)
    batches: list[list[int]] = field(default_factory=list)
    skipped: int = 0
    expired: list[int] = field(default_factory=list)


def stalled_alerts(session: Session, *, stale: datetime) -> list[int]:
    """Alerts with pending rows older than `stale` whose fan-out stopped moving: none of their rows was touched
    since (claimed, sent, failed, skipped, held back by a rate limit or set to retry, re-enqueued by a sweep).

    A held or retrying row is pending again with a fresh `updated_at`, so an alert whose batches all wait for a
    retry countdown counts as moving until that row is `stale` too; a countdown longer than that (backoff grows
    to 5 minutes) gets its rows re-enqueued, at most once per stale period, and the claim makes the extra task
    harmless. One grouped query: the candidates, each with one probe for a recent row."""
    candidates = (
        select(Delivery.alert_id)
        .where(Delivery.state == DeliveryState.PENDING.value, Delivery.updated_at < stale)
        .group_by(Delivery.alert_id)
        .subquery()
    )
    recent = aliased(Delivery)
    moving = select(recent.id).where(recent.alert_id == candidates.c.alert_id, recent.updated_at >= stale).exists()
    return list(session.scalars(select(candidates.c.alert_id).where(~moving).order_by(candidates.c.alert_id)))


def sweep(session: Session, *, stale_s: int = 60, batch_size: int = 200) -> SweepPlan:
    """Expire alerts past their expiry, then find work a lost message or dead worker left behind:
    unplanned approvals, expired leases, and the stale pending rows of alerts whose fan-out stopped moving
    (a long rate-limited fan-out still waiting in the queue is left alone); skip what belongs to alerts no
    longer live."""
    now = utcnow()
    stale = now - timedelta(seconds=stale_s)
    plan = SweepPlan()
    plan.expired = [a.id for a in alerts.expire_due(session, now=now)]
    # Approved but never planned, or published by a plan a dead worker left half done.
    plan.fanout_alert_ids = list(
        session.scalars(
            select(Alert.id).where(
                Alert.state.in_([AlertState.APPROVED.value, AlertState.PUBLISHED.value]),
                Alert.planned_at.is_(None),
                Alert.approved_at < stale,
            )
        )
    )
    stalled = stalled_alerts(session, stale=stale)
    rows = session.execute(
        select(Delivery.id, Delivery.alert_id)
        .where(
            or_(
                and_(
                    Delivery.state == DeliveryState.PENDING.value,
                    Delivery.updated_at < stale,
                    _among(session, Delivery.alert_id, stalled),
                ),
                and_(Delivery.state == DeliveryState.SENDING.value, Delivery.lease_until < now),
            )
        )
        .order_by(Delivery.alert_id, Delivery.id)
    ).all()
    by_alert: dict[int, list[int]] = defaultdict(list)
    for r in rows:
        by_alert[r.alert_id].append(r.id)
    for alert_id, ids in by_alert.items():
        alert = session.get(Alert, alert_id)
        if alert is None or not alerts.is_live(alert):
            skip(session, delivery_ids=ids, reason="alert not live")
            plan.skipped += len(ids)
            continue
        plan.batches += [ids[i : i + batch_size] for i in range(0, len(ids), batch_size)]
    # A re-enqueued row counts as fresh again (and as movement of its alert): rows whose task is lost again are
    # re-enqueued at most once per `stale_s`, not on every sweep.
    requeued = [i for ids in plan.batches for i in ids]
    for start in range(0, len(requeued), 5000):
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(requeued[start : start + 5000]), Delivery.state == DeliveryState.PENDING.value)
            .values(updated_at=now)
        )
    return plan


def delivery_counts(session: Session, *, alert_id: int) -> dict[str, Counter[str]]:
    """Number of deliveries per channel and state."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    stmt = (
        select(Delivery.channel, Delivery.state, func.count())
        .where(Delivery.alert_id == alert_id)
        .group_by(Delivery.channel, Delivery.state)
    )
    for channel, state, n in session.execute(stmt):
        counts[channel][state] = n
    return dict(counts)


def outbox_for(session: Session, *, alert_id: int, limit: int = 500) -> list[OutboxMessage]:
    """The outbox messages of an alert, oldest first."""
    stmt = (
        select(OutboxMessage)
        .join(Delivery, Delivery.id == OutboxMessage.delivery_id)
        .where(Delivery.alert_id == alert_id)
        .order_by(OutboxMessage.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def social_posts_since(session: Session, *, since: datetime, public_base_url: str) -> int:
    """How many X posts the service made since `since`: every published social delivery counted as the
    thread the renderer makes of it (the same renderer that posted it)."""
    from channels.social import XRenderer

    renderer = XRenderer()
    alert_ids = session.scalars(
        select(Delivery.alert_id).where(
            Delivery.channel == "social", Delivery.sent_at >= since, Delivery.state.in_(["sent", "delivered"])
        )
    ).all()
    total = 0
    for alert_id in alert_ids:
        alert = alerts.get_alert(session, alert_id=alert_id)
        total += len(renderer.render_thread(alerts.to_alert_data(alert, public_base_url=public_base_url)))
    return total


FINAL_STATES = ("sent", "delivered", "undelivered", "failed", "skipped")


@dataclass(frozen=True)
class ChannelProgress:
    channel: str
    total: int
    by_state: dict[str, int]

    @property
    def finished(self) -> int:
        """Deliveries that will not change any more (sent, delivered, failed, skipped...)."""
        return sum(self.by_state.get(s, 0) for s in FINAL_STATES)


def progress(session: Session, *, alert_id: int) -> list[ChannelProgress]:
    """Per channel of the alert: how many deliveries are in each state.

    Raises: AlertNotFound.
    """
    alert = alerts.get_alert(session, alert_id=alert_id)
    counts = delivery_counts(session, alert_id=alert.id)
    out = []
    for channel in alert.channels:
        c: Counter[str] = counts.get(channel, Counter())
        by_state = {s.value: c.get(s.value, 0) for s in DeliveryState}
        out.append(ChannelProgress(channel, sum(by_state.values()), by_state))
    return out


def is_settled(session: Session, *, alert_id: int, rows: list[ChannelProgress]) -> bool:
    """True once the alert was planned in full and no delivery is still pending or being sent."""
    alert = alerts.get_alert(session, alert_id=alert_id)
    if alert.state in (AlertState.DRAFT.value, AlertState.SUBMITTED.value, AlertState.APPROVED.value):
        return False
    if alert.planned_at is None and alerts.is_live(alert):
        return False  # rows are still being written: the first chunks may all be done before the rest exist
    return all(r.finished == r.total for r in rows)

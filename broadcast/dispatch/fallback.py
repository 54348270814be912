"""One person, many channels, one warning: when a person's delivery failed, or was not delivered in time, plan
their next channel's delivery (once; the unique alert × channel × recipient key makes a second run harmless)."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from broadcast.alerts import service as alerts
from broadcast.alerts.models import Alert
from broadcast.dispatch import planning, sql
from broadcast.dispatch.models import Delivery, DeliveryState
from broadcast.subscribers.models import Subscriber
from channels.base import Audience
from channels.registry import audience_of, get_spec

log = logging.getLogger(__name__)
DEADLINE_PASSED = "not sent within the send deadline: the next channel takes over"


def note_status(row: Delivery, *, now: datetime) -> None:
    """A provider's status callback moved `row` (a person's delivery): delivered means no fallback; undelivered or
    failed makes the next channel due now. Status callbacks of every channel with receipts call this."""
    if row.fallback_due is None:
        return
    if row.state == DeliveryState.DELIVERED.value:
        row.fallback_due = None
    elif row.state in planning.GIVEN_UP_STATES:
        row.fallback_due = min(row.fallback_due, now)


def due(session: Session, *, now: datetime, limit: int | None = 5000, alert_id: int | None = None) -> list[int]:
    """Ids of deliveries (of one alert, if given) whose fallback time has come, oldest first (the beat sweep hands
    them to the fallback task: the countdown that should have done it may have died with its worker)."""
    stmt = select(Delivery.id).where(Delivery.fallback_due <= now).order_by(Delivery.fallback_due).limit(limit)
    if alert_id is not None:
        stmt = stmt.where(Delivery.alert_id == alert_id)
    return list(session.scalars(stmt))


def fall_back(session: Session, *, delivery_ids: Sequence[int], now: datetime) -> dict[int, dict[str, list[int]]]:
    """For each of these deliveries whose fallback time has come: plan the person's next channel (the first in
    their order without a row) unless a row reached them or a later row decides; then clear its fallback time.

    Idempotent, and exactly one row per person and channel whatever runs at once (rows are locked, the insert
    ignores a row that exists). Rows not yet due are left alone. Returns the new pending ids per alert and channel.
    """
    stmt = (
        select(Delivery.id, Delivery.alert_id, Delivery.subscriber_id, Delivery.language, Delivery.state)
        .where(sql.among(session, Delivery.id, delivery_ids), Delivery.fallback_due <= now)
        .with_for_update(skip_locked=True)
    )
    # A row a worker holds (`sending`) is left for its outcome, which sets its next fallback time.
    due_rows = [r for r in session.execute(stmt) if r.state != DeliveryState.SENDING.value]
    if not due_rows:
        return {}
    unsent = [r.id for r in due_rows if r.state == DeliveryState.PENDING.value]
    if unsent:
        # The send deadline passed before the row could go (its channel's rate, retries): it gives way to the
        # person's next channel. Locked above, so no worker claims it meanwhile: one message, never both.
        session.execute(
            update(Delivery)
            .where(sql.among(session, Delivery.id, unsent), Delivery.state == DeliveryState.PENDING.value)
            .values(state=DeliveryState.SKIPPED.value, error=DEADLINE_PASSED, lease_until=None, updated_at=now)
        )
    alert_ids = {r.alert_id for r in due_rows}
    sub_ids = {r.subscriber_id for r in due_rows if r.subscriber_id is not None}
    live = {a.id: a for a in session.scalars(select(Alert).where(Alert.id.in_(alert_ids))) if alerts.is_live(a)}
    personal = {
        c: get_spec(c).subscriber_address
        for a in live.values()
        for c in a.channels
        if audience_of(c) is Audience.SUBSCRIBERS
    }
    people: dict[int, Any] = {}
    if sub_ids and personal:
        columns = [getattr(Subscriber, f) for f in sorted(set(personal.values()))]
        found = session.execute(
            select(Subscriber.id, Subscriber.channels, Subscriber.all_channels, *columns).where(
                sql.among(session, Subscriber.id, list(sub_ids)), Subscriber.active.is_(True)
            )
        )
        people = {p.id: p._mapping for p in found}
    history: dict[tuple[int, int], list[tuple[int, str, str]]] = defaultdict(list)
    if people:
        # By the unique alert × channel × recipient index: a person's rows, not a scan of the alert's.
        rows = session.execute(
            select(Delivery.id, Delivery.alert_id, Delivery.subscriber_id, Delivery.channel, Delivery.state).where(
                Delivery.alert_id.in_(list(live)),
                Delivery.channel.in_(list(personal)),
                Delivery.recipient_key.in_([f"sub:{sid}" for sid in people]),
            )
        )
        for h in rows:
            history[h.alert_id, h.subscriber_id].append((h.id, h.channel, h.state))
    wanted: dict[tuple[int, str], list[dict[str, Any]]] = defaultdict(list)
    for r in due_rows:
        alert, person = live.get(r.alert_id), people.get(r.subscriber_id or 0)
        if alert is None or person is None or person["all_channels"]:
            continue
        usable = {c: personal[c] for c in alert.channels if c in personal}
        order = planning.person_order(person["channels"], planning.reachable_on(person, usable))
        nxt = planning.next_channel(order, history[r.alert_id, r.subscriber_id], due_id=r.id)
        if nxt is not None:
            wanted[r.alert_id, nxt].append(
                {
                    "alert_id": r.alert_id,
                    "channel": nxt,
                    "recipient_key": f"sub:{r.subscriber_id}",
                    "subscriber_id": r.subscriber_id,
                    "language": r.language,
                }
            )
    planned: dict[int, dict[str, list[int]]] = defaultdict(dict)
    for (alert_id, channel), new_rows in wanted.items():
        ids = sql.insert_deliveries(session, new_rows)
        if ids:
            planned[alert_id][channel] = ids
    session.execute(
        update(Delivery).where(sql.among(session, Delivery.id, [r.id for r in due_rows])).values(fallback_due=None)
    )
    if planned:
        moved = sum(len(ids) for by_channel in planned.values() for ids in by_channel.values())
        log.info("fallback: %d people moved to their next channel", moved)
    return dict(planned)

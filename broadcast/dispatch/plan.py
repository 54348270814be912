"""Fan-out planning with the database: which delivery rows an alert gets (idempotent), and its queue."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from broadcast.alerts import service as alerts
from broadcast.alerts import target_area
from broadcast.alerts.models import Alert, AlertState, MsgType
from broadcast.db import utcnow
from broadcast.dispatch import planning, sql
from broadcast.dispatch.models import REACHED_STATES, Delivery, DeliveryState
from broadcast.subscribers import targeting, warm
from broadcast.subscribers.models import Subscriber
from channels.base import Audience
from channels.registry import audience_of, get_spec

log = logging.getLogger(__name__)

FIRST_PAGE = 500  # subscribers read for the first planned rows of a fan-out


def plan_alert(session: Session, *, alert_id: int) -> dict[str, list[int]]:
    """Create the delivery rows of an alert (idempotent); publish the alert.

    Subscribers are matched against the areas' codes and drawn geometry (subscribers.targeting); each person
    gets one row, on the first of their channels (in their order) that the alert uses and they have an address
    on, or one per such channel if they asked for all (the fallback step plans the next channel when one fails).
    An Update or Cancel first reaches everyone the original reached; a Cancel reaches no one else. Returns the
    pending delivery ids per channel. A non-live alert plans nothing.
    """
    planned: dict[str, list[int]] = defaultdict(list)
    for part in plan_alert_stream(session, alert_id=alert_id):
        for channel, ids in part.items():
            planned[channel] += ids
    return {channel: sorted(ids) for channel, ids in planned.items()}


def plan_alert_stream(
    session: Session,
    *,
    alert_id: int,
    chunk: int = 5000,
    room: Mapping[str, int] | None = None,
    send_deadline_s: float = 0,
) -> Iterator[dict[str, list[int]]]:
    """`plan_alert` in steps: yields the pending delivery ids per channel as each chunk of rows is flushed, so
    the caller can commit and enqueue the first batches before the last rows exist. Every pending id of the
    alert is yielded exactly once (rows an earlier run created come last). The publish comes alone, as an empty
    first part, before any targeting: public pages and feeds show the alert first, and a cancel arriving during
    planning already finds it live; `planned_at` is set with the last part (the sweep re-plans a published
    alert without it).

    The send deadline: `room` is how many people each paced channel can send to within `send_deadline_s` (see
    planning.send_room); a person whose preferred channel is full goes on the next of their channels with room,
    and every row with a next channel is due for the fallback step `send_deadline_s` after planning (a row
    still unsent then moves on; a sent one gets its receipt wait instead)."""
    alert = session.scalar(select(Alert).where(Alert.id == alert_id).with_for_update())
    if alert is None or not alerts.is_live(alert):
        return
    if alert.state == AlertState.APPROVED.value:
        alerts.mark_published(session, alert=alert)
        yield {}  # visible first: the caller commits the publish before any targeting (public pages, feeds)
    yielded: set[int] = set()

    def add(channel: str, rows: list[dict[str, Any]], *, due: datetime | None = None) -> dict[str, list[int]]:
        ids = sql.insert_deliveries(session, rows)
        if due is not None and ids:
            sql.set_fallback_due(session, ids, due)
        yielded.update(ids)
        return {channel: sorted(ids)} if ids else {}

    room_left = dict(room or {})

    target = target_area.target_of(alert)
    public_lang = alert.infos[0].language if alert.infos else "id-ID"
    follow_up = alert.references_alert_id is not None and alert.msg_type in (MsgType.UPDATE, MsgType.CANCEL)
    targeted: list[str] = []  # personal channels that also reach fresh targeting results
    # Each person is planned once, on their preferred channel, whatever changed since: people who already have a
    # row of this alert (the original's recipients of a follow-up, everyone an interrupted earlier run planned)
    # are left out. Only a run after an interrupted one looks for its rows, page by page (the unique index).
    planned_people: set[int] = set()
    rerun = session.scalar(
        select(Delivery.id).where(Delivery.alert_id == alert.id, Delivery.subscriber_id.is_not(None)).limit(1)
    )
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
            planned_people.update(r.subscriber_id for r in reached if r.subscriber_id is not None)
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
        addresses = {c: get_spec(c).subscriber_address for c in targeted}
        columns = [getattr(Subscriber, f) for f in sorted(set(addresses.values()))]
        for page in planning.pages(matched.tolist(), first=FIRST_PAGE, size=chunk):
            found = session.execute(
                select(Subscriber.id, Subscriber.language, Subscriber.channels, Subscriber.all_channels, *columns)
                .where(sql.among(session, Subscriber.id, page), Subscriber.active.is_(True))
                .order_by(Subscriber.id)
            ).all()
            by_channel: dict[str, list[dict[str, Any]]] = defaultdict(list)
            with_next: dict[str, list[dict[str, Any]]] = defaultdict(list)  # rows whose person has a next channel
            due = utcnow() + timedelta(seconds=send_deadline_s) if send_deadline_s > 0 else None
            if rerun is not None:
                planned_people |= set(
                    session.scalars(
                        select(Delivery.subscriber_id).where(
                            Delivery.alert_id == alert.id,
                            Delivery.channel.in_(targeted),
                            Delivery.recipient_key.in_([f"sub:{sub.id}" for sub in found]),
                        )
                    )
                )
            for sub in found:
                if sub.id in planned_people:
                    continue
                order = planning.person_order(sub.channels, planning.reachable_on(sub._mapping, addresses))
                for channel in planning.choose_channels(order, all_channels=sub.all_channels, room=room_left):
                    has_next = due is not None and planning.has_fallback(order, channel, all_channels=sub.all_channels)
                    (with_next if has_next else by_channel)[channel].append(
                        {
                            "alert_id": alert.id,
                            "channel": channel,
                            "recipient_key": f"sub:{sub.id}",
                            "subscriber_id": sub.id,
                            "language": sub.language,
                        }
                    )
            for channel in targeted:
                if by_channel[channel] or with_next[channel]:
                    ids = add(channel, by_channel[channel]).get(channel, [])
                    ids += add(channel, with_next[channel], due=due).get(channel, [])
                    yield {channel: sorted(ids)} if ids else {}
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


def queue_of(session: Session, *, alert_id: int) -> str:
    """The Celery queue an alert's batches go to (critical for cancels, updates, Extreme+Immediate)."""
    alert = session.get(Alert, alert_id)
    if alert is None or not alert.infos:
        return planning.ROUTINE_QUEUE
    first = alert.infos[0]
    return planning.queue_for(msg_type=alert.msg_type, severity=first.severity, urgency=first.urgency)

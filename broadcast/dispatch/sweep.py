"""The beat sweep: expire alerts, re-plan lost fan-outs, re-enqueue rows a lost task or dead worker left."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session, aliased

from broadcast.alerts import service as alerts
from broadcast.alerts.models import Alert, AlertState
from broadcast.db import utcnow
from broadcast.dispatch import fallback, planning, sql
from broadcast.dispatch.claims import skip
from broadcast.dispatch.models import Delivery, DeliveryState


@dataclass
class SweepPlan:
    fanout_alert_ids: list[int] = field(default_factory=list)
    batches: list[list[int]] = field(default_factory=list)
    skipped: int = 0
    expired: list[int] = field(default_factory=list)
    fallbacks: list[list[int]] = field(default_factory=list)


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
    unplanned approvals, expired leases, overdue fallbacks, and the stale pending rows of alerts whose fan-out
    stopped moving (a long rate-limited fan-out still waiting in the queue is left alone); skip what belongs to
    alerts no longer live."""
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
                    sql.among(session, Delivery.alert_id, stalled),
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
    # Fallbacks a countdown should have checked by now (its worker may have died with it).
    plan.fallbacks = list(planning.batches(fallback.due(session, now=stale), batch_size))
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

"""Recording what the providers said about a sent batch, in bulk; which rows to retry and when."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from broadcast.db import utcnow
from broadcast.dispatch import sql
from broadcast.dispatch.models import Delivery, DeliveryState, OutboxMessage
from broadcast.dispatch.pacing import Sent
from broadcast.dispatch.planning import MAX_ATTEMPTS
from channels.base import Outcome
from channels.registry import get_spec


def record_results(session: Session, *, sent: Sequence[Sent], fallback_s: float = 120.0) -> list[int]:
    """Store each outcome (and the outbox copy); return the ids to retry later.

    A row whose person has a next channel gets its fallback time: now when it failed, `fallback_s` after it was
    sent on a live channel with delivery receipts (a delivery receipt before then means no fallback)."""
    now = utcnow()
    retry: list[int] = []
    outbox_rows = []
    attempts: dict[int, int] = {}
    if sent:
        ids = [s.item.delivery_id for s in sent]
        stmt = select(Delivery.id, Delivery.attempts).where(sql.among(session, Delivery.id, ids))
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
    sql.update_outcomes(conn, outcomes, now)
    _set_fallback_due(conn, sent, outcomes, now=now, wait=timedelta(seconds=fallback_s))
    # Only rows we still hold: a row whose lease was taken over by another worker is not ours to overwrite.
    mine = and_(Delivery.id == bindparam("b_id"), Delivery.state == DeliveryState.SENDING.value)
    if held:
        # Waiting for a provider limit is not an attempt: a day-long cap must not use up the retries.
        conn.execute(
            update(Delivery)
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
        conn.execute(update(Delivery).where(mine).values(error=bindparam("b_error"), lease_until=now), in_doubt)
    sql.insert_ignore(session, OutboxMessage, outbox_rows, ["delivery_id"])
    return retry


def awaits_receipt(s: Sent) -> bool:
    """Whether a sent message only counts as reaching its person once delivered: live, on a channel whose provider
    reports delivery (the outbox and channels without receipts never will)."""
    return s.result.outcome is Outcome.SENT and s.mode == "live" and get_spec(s.item.channel).delivery_receipts


def fallback_checks(sent: Sequence[Sent]) -> tuple[list[int], list[int]]:
    """The rows of a batch whose person has a next channel: those to check now (not sent) and those to check once
    the fallback wait is over (sent, awaiting a delivery receipt)."""
    now = [s.item.delivery_id for s in sent if s.item.fallback and s.result.outcome is not Outcome.SENT]
    later = [s.item.delivery_id for s in sent if s.item.fallback and awaits_receipt(s)]
    return now, later


def _set_fallback_due(
    conn: Connection, sent: Sequence[Sent], outcomes: list[dict[str, Any]], *, now: datetime, wait: timedelta
) -> None:
    """Fallback times of the recorded rows that have a next channel (only rows in the state just written). A row
    sent on a channel without receipts has reached its person: the send deadline planning gave it is cleared."""
    state_of = {o["b_id"]: o["b_state"] for o in outcomes}
    due: dict[tuple[str, datetime | None], list[int]] = defaultdict(list)
    for s in sent:
        did = s.item.delivery_id
        if did not in state_of:
            continue
        state = state_of[did]
        if state == DeliveryState.SENT.value and not awaits_receipt(s):
            due[state, None].append(did)
        elif not s.item.fallback:
            continue
        elif state == DeliveryState.FAILED.value:
            due[state, now].append(did)
        elif state == DeliveryState.SENT.value:
            due[state, now + wait].append(did)
    for (state, at), ids in due.items():
        where = [sql.among(conn, Delivery.id, ids), Delivery.state == state]
        if at is None:
            where.append(Delivery.fallback_due.is_not(None))
        conn.execute(update(Delivery).where(*where).values(fallback_due=at))


def retry_after_hint(sent: Sequence[Sent], retry_ids: Sequence[int]) -> float | None:
    """The longest wait a provider asked for among the deliveries to retry; None when none asked."""
    wanted = set(retry_ids)
    hints = [s.result.retry_after for s in sent if s.item.delivery_id in wanted and s.result.retry_after is not None]
    return max(hints) if hints else None

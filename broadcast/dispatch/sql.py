"""The fan-out's dialect-specific SQL, in one place: ON CONFLICT inserts, `= ANY(array)` and the unnest bulk
statements PostgreSQL gets (SQLite gets the plain equivalents)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, and_, any_, bindparam, case, func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from broadcast.db import table_of, utcnow
from broadcast.dispatch.models import Delivery, DeliveryState

_DELIVERIES = table_of(Delivery)
DELIVERY_KEY = ["alert_id", "channel", "recipient_key"]
# The columns a planned row is given; the rest take their defaults.
PLANNED_COLUMNS = ("alert_id", "channel", "recipient_key", "subscriber_id", "language")


def _is_postgresql(session: Session | Connection) -> bool:
    bind = session.get_bind() if isinstance(session, Session) else session
    return bind.dialect.name == "postgresql"


def _insert(session: Session, table: Any) -> Any:
    return (postgresql.insert if _is_postgresql(session) else sqlite.insert)(table)


def insert_ignore(session: Session, model: Any, rows: list[dict[str, Any]], keys: list[str]) -> None:
    """INSERT these rows, leaving out those whose `keys` already exist."""
    if rows:
        session.execute(_insert(session, model).on_conflict_do_nothing(index_elements=keys), rows)


def among(session: Session | Connection, column: Any, ids: Sequence[int]) -> Any:
    """`column IN (ids)`; on PostgreSQL `column = ANY(array)`: one parameter instead of one per id, so psycopg
    and the server parse a short statement whatever the batch size."""
    if _is_postgresql(session):
        return column == any_(literal(list(ids), type_=postgresql.ARRAY(column.type)))
    return column.in_(list(ids))


def insert_deliveries(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    """Insert pending delivery rows (PLANNED_COLUMNS), leaving out those that exist; return the new ids."""
    if not rows:
        return []
    if _is_postgresql(session):
        return list(session.scalars(_unnest_insert(_DELIVERIES), _unnest_params(rows)))
    insert = (
        _insert(session, _DELIVERIES).on_conflict_do_nothing(index_elements=DELIVERY_KEY).returning(_DELIVERIES.c.id)
    )
    return list(session.scalars(insert, rows))


def set_fallback_due(session: Session, ids: Sequence[int], at: datetime) -> None:
    """When the fallback step looks at these rows (the send deadline of freshly planned rows)."""
    session.execute(update(_DELIVERIES).where(among(session, _DELIVERIES.c.id, ids)).values(fallback_due=at))


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
        .table_valued(*PLANNED_COLUMNS)
        .render_derived(name="planned")
    )
    now = bindparam("p_now", type_=c.created_at.type)
    source = select(
        *(rows.c[name] for name in PLANNED_COLUMNS),
        literal(DeliveryState.PENDING.value, type_=c.state.type),
        literal(0, type_=c.attempts.type),
        now,
        now,
    )
    return (
        postgresql.insert(table)
        .from_select([*PLANNED_COLUMNS, "state", "attempts", "created_at", "updated_at"], source)
        .on_conflict_do_nothing(index_elements=DELIVERY_KEY)
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


def update_outcomes(conn: Connection, outcomes: list[dict[str, Any]], now: datetime) -> None:
    """Write a batch's outcomes (`b_id`, `b_state`, `b_pid`, `b_sent`, `b_error` each) in one statement, only to
    rows still `sending` (ours: a row whose lease another worker took over is not ours to overwrite)."""
    if not outcomes:
        return
    if _is_postgresql(conn):
        conn.execute(_unnest_outcomes(), _outcome_arrays(outcomes, now))
        return
    mine = and_(Delivery.id == bindparam("b_id"), Delivery.state == DeliveryState.SENDING.value)
    conn.execute(
        update(_DELIVERIES)
        .where(mine)
        .values(
            state=bindparam("b_state"),
            provider_id=func.coalesce(bindparam("b_pid", type_=Delivery.provider_id.type), Delivery.provider_id),
            sent_at=func.coalesce(bindparam("b_sent", type_=_DELIVERIES.c.sent_at.type), Delivery.sent_at),
            error=bindparam("b_error"),
            lease_until=None,
            updated_at=now,
        ),
        outcomes,
    )


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

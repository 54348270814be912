"""Append to and verify the hash-chained audit log."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from broadcast.audit.models import AuditEntry, AuditHead
from broadcast.db import utcnow

GENESIS = "0" * 64
# Any constant: serialises writers of the chain on PostgreSQL (SQLite has one writer anyway).
_CHAIN_LOCK = 0x6175646974


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def entry_hash(entry: AuditEntry) -> str:
    """The SHA-256 of an entry's content chained to the previous entry's hash."""
    body = json.dumps(
        {
            "prev": entry.prev_hash,
            "at": entry.at.isoformat(timespec="microseconds"),
            "actor": entry.actor_id,
            "action": entry.action,
            "subject": [entry.subject_type, entry.subject_id],
            "before": entry.before,
            "after": entry.after,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(body.encode()).hexdigest()


def record(
    session: Session,
    *,
    actor_id: int | None,
    action: str,
    subject_type: str,
    subject_id: int | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry, chained to the last one, in the caller's transaction."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CHAIN_LOCK})
    prev = session.scalar(select(AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)) or GENESIS
    entry = AuditEntry(
        at=utcnow(),
        actor_id=actor_id,
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        before=_jsonable(before),
        after=_jsonable(after),
        prev_hash=prev,
    )
    entry.hash = entry_hash(entry)
    session.add(entry)
    session.flush()
    _advance_head(session, added=1, last_hash=entry.hash)
    return entry


def _advance_head(session: Session, *, added: int, last_hash: str) -> None:
    """Move the chain's head past `added` new entries ending in `last_hash` (same transaction as the entries)."""
    moved = session.execute(
        update(AuditHead).where(AuditHead.id == 1).values(entries=AuditHead.entries + added, hash=last_hash)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        raise RuntimeError("audit_head is missing: run the migrations")


def record_many(session: Session, *, entries: list[dict[str, Any]]) -> int:
    """Append several entries (each with the keyword arguments of `record`) in order, chained, under one lock and
    one bulk flush, in the caller's transaction; returns how many."""
    if not entries:
        return 0
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CHAIN_LOCK})
    prev = session.scalar(select(AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)) or GENESIS
    rows = []
    for item in entries:
        entry = AuditEntry(
            at=utcnow(),
            actor_id=item.get("actor_id"),
            action=item["action"],
            subject_type=item["subject_type"],
            subject_id=item.get("subject_id"),
            before=_jsonable(item.get("before")),
            after=_jsonable(item.get("after")),
            prev_hash=prev,
        )
        entry.hash = prev = entry_hash(entry)
        rows.append(entry)
    session.add_all(rows)
    session.flush()
    for row in rows:  # the head's trigger accepts one entry per step, like the log itself
        _advance_head(session, added=1, last_hash=row.hash)
    return len(rows)


@dataclass(frozen=True)
class ChainCheck:
    """`entries`: how many entries were checked; when broken, the position (1-based) of the first broken one."""

    ok: bool
    entries: int
    first_bad_id: int | None = None  # None when the broken position is a missing entry (a cut-off tail)
    reason: str = ""


def verify_chain(session: Session) -> ChainCheck:
    """Recompute every hash in order and compare the end of the chain with the head; report the first broken
    position: an edited, deleted, inserted or reordered entry breaks a link, a cut-off tail falls short of the
    head."""
    prev = GENESIS
    count = 0
    for entry in session.scalars(select(AuditEntry).order_by(AuditEntry.id)).yield_per(1000):
        count += 1
        if entry.prev_hash != prev:
            return ChainCheck(False, count, entry.id, "prev_hash does not match the previous entry")
        expected = entry_hash(entry)
        if expected != entry.hash:
            return ChainCheck(False, count, entry.id, "content does not match its hash")
        prev = entry.hash
    head = session.get(AuditHead, 1)
    if head is None:
        return ChainCheck(False, count + 1, None, "the chain's head record is missing")
    if count < head.entries:
        return ChainCheck(
            False, count + 1, None, f"entries missing at the end: the head records {head.entries}, found {count}"
        )
    if count > head.entries:
        return ChainCheck(
            False, head.entries + 1, None, f"entries past the head: the head records {head.entries}, found {count}"
        )
    if prev != head.hash:
        return ChainCheck(False, count, None, "the last entry is not the one the head records")
    return ChainCheck(True, count)


def entries_for(session: Session, *, subject_type: str, subject_id: int) -> list[AuditEntry]:
    """Every entry about one subject, oldest first."""
    stmt = (
        select(AuditEntry)
        .where(AuditEntry.subject_type == subject_type, AuditEntry.subject_id == subject_id)
        .order_by(AuditEntry.id)
    )
    return list(session.scalars(stmt))

"""Incoming reports: store the raw payload first, exactly once per provider message, without phone numbers."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from broadcast.reports.models import Report

# Form fields that carry the sender's own number; stored only as the keyed hash.
PHONE_FIELDS = ("From",)


def author_hash(key: bytes, phone: str) -> str:
    """A keyed SHA-256 of a phone number: the same sender links their reports, the number is never stored."""
    return hmac.new(key, phone.encode(), hashlib.sha256).hexdigest()


def find_report(session: Session, *, source: str, external_id: str) -> Report | None:
    """The report a provider message became, or None."""
    return session.scalar(select(Report).where(Report.source == source, Report.external_id == external_id))


def store_inbound(
    session: Session, *, source: str, external_id: str, raw: Mapping[str, object], author: str
) -> tuple[Report, bool]:
    """Store a provider's raw payload once (the sender's number replaced by `author`, their hash).

    Returns the report and whether it is new; a second delivery of the same message returns the first row.
    """
    existing = find_report(session, source=source, external_id=external_id)
    if existing is not None:
        return existing, False
    payload = {k: (f"hmac:{author}" if k in PHONE_FIELDS else v) for k, v in raw.items()}
    report = Report(source=source, external_id=external_id, raw=payload, author_hash=author, state="new")
    try:
        with session.begin_nested():
            session.add(report)
            session.flush()
    except IntegrityError:
        # A concurrent delivery of the same webhook stored it first.
        found = find_report(session, source=source, external_id=external_id)
        if found is None:
            raise
        return found, False
    return report, True

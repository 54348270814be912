"""Incoming reports: store the raw payload first, exactly once per provider message, without phone numbers."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from broadcast.reports.models import PollCheckpoint, Report
from channels.base import InboundEvent

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


def find_checkpoint(session: Session, *, name: str) -> PollCheckpoint | None:
    """The saved state named `name` (a poller's position, an SMS sender's pending choice), if any."""
    return session.get(PollCheckpoint, name)


def get_checkpoint(session: Session, *, name: str) -> str | None:
    """The value a poller saved under `name`, or None on its first run."""
    row = find_checkpoint(session, name=name)
    return row.value if row else None


def set_checkpoint(session: Session, *, name: str, value: str) -> None:
    """Save a poller's position; committed with the reports it covers, so neither runs ahead of the other."""
    row = session.get(PollCheckpoint, name)
    if row is None:
        session.add(PollCheckpoint(name=name, value=value))
    else:
        row.value = value
    session.flush()


def store_x_post(session: Session, *, event: InboundEvent, account: str, author_key: bytes) -> tuple[Report, bool]:
    """A post that mentions an agency account, stored once as a new report (the author only as a keyed hash,
    coordinates when the post carries them; place names are left for the report pipeline)."""
    tweet = dict(event.raw.get("tweet") or {})  # type: ignore[call-overload]
    raw = {"account": account, "tweet": tweet, "author_id": tweet.get("author_id")}
    report, new = store_inbound(
        session, source="x", external_id=event.external_id, raw=raw, author=author_hash(author_key, event.sender)
    )
    if new:
        report.text = event.text
        created = tweet.get("created_at")
        if isinstance(created, str):
            report.received_at = datetime.fromisoformat(created.replace("Z", "+00:00"))
        coordinates = (tweet.get("geo") or {}).get("coordinates") or {}
        if coordinates.get("type") == "Point":
            report.lon, report.lat = coordinates["coordinates"][:2]
        session.flush()
    return report, new


def ingest_x_mentions(session: Session, *, client: object, account: str, user_id: str, author_key: bytes) -> int:
    """Poll one account's mentions from its checkpoint and store each new one; returns how many were new.

    Raises: the channel's errors (RateLimited, ChannelUnavailable) with nothing stored or moved forward.
    """
    from channels.social import poll_mentions

    name = f"x-mentions:{user_id}"
    poll = poll_mentions(client, user_id, get_checkpoint(session, name=name))  # type: ignore[arg-type]
    new = 0
    for event in poll.events:
        new += store_x_post(session, event=event, account=account, author_key=author_key)[1]
    if poll.since_id:
        set_checkpoint(session, name=name, value=poll.since_id)
    return new


def ingest_x_search(session: Session, *, client: object, query: str, author_key: bytes) -> int:
    """Run the configured keyword search from its checkpoint and store each new post as a report.

    Raises: the channel's errors with nothing stored or moved forward.
    """
    from channels.social import poll_search

    name = "x-search:" + hashlib.sha256(query.encode()).hexdigest()[:16]
    poll = poll_search(client, query, get_checkpoint(session, name=name))  # type: ignore[arg-type]
    new = 0
    for event in poll.events:
        new += store_x_post(session, event=event, account=f"search:{query}", author_key=author_key)[1]
    if poll.since_id:
        set_checkpoint(session, name=name, value=poll.since_id)
    return new

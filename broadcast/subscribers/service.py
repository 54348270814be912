"""Subscribers: who gets SMS for which place."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import phonenumbers
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from broadcast.audit import service as audit
from broadcast.db import utcnow
from broadcast.errors import Conflict, Invalid
from broadcast.subscribers.models import Subscriber
from geo import gazetteer

# Why a subscriber is inactive (Subscriber.stop_reason).
STOP_SMS = "sms-stop"  # they texted BERHENTI/STOP to us
STOP_TWILIO = "twilio-opt-out"  # Twilio reported 21610: they opted out with Twilio itself
STOP_UNDELIVERABLE = "undeliverable"  # the number can never receive (invalid, landline, blocked)


class InvalidPhone(Invalid):
    code = "invalid-phone"


def normalise_phone(raw: str, *, region: str = "ID") -> str:
    """The E.164 form of a phone number written the Indonesian way or internationally.

    Raises: InvalidPhone.
    """
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(f"Nomor telepon tidak valid / invalid phone number: {raw!r}") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone(f"Nomor telepon tidak valid / invalid phone number: {raw!r}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def add_subscriber(
    session: Session, *, phone: str, admin_code: str, language: str = "id", actor_id: int | None = None
) -> Subscriber:
    """Register a phone number for an area.

    Raises: InvalidPhone, Invalid (unknown area code), Conflict (already registered).
    """
    e164 = normalise_phone(phone)
    if gazetteer.find_place(admin_code) is None:
        raise Invalid(f"Kode wilayah '{admin_code}' tidak dikenal / unknown area code", code="unknown-area-code")
    if session.scalar(select(Subscriber.id).where(Subscriber.phone == e164)) is not None:
        raise Conflict("Nomor sudah terdaftar / number already registered", code="subscriber-exists")
    sub = Subscriber(phone=e164, admin_code=admin_code, language=language)
    session.add(sub)
    session.flush()
    audit.record(
        session,
        actor_id=actor_id,
        action="subscriber.create",
        subject_type="subscriber",
        subject_id=sub.id,
        after={"admin_code": admin_code, "language": language},
    )
    return sub


def iter_targeted(session: Session, *, codes: Sequence[str], batch_size: int = 1000) -> Iterator[list[tuple[int, str]]]:
    """(subscriber id, language) of every active subscriber registered inside any of `codes`, in batches."""
    if not codes:
        return
    inside = or_(*[or_(Subscriber.admin_code == c, Subscriber.admin_code.like(f"{c}.%")) for c in codes])
    stmt = (
        select(Subscriber.id, Subscriber.language)
        .where(Subscriber.active.is_(True), inside)
        .order_by(Subscriber.id)
        .execution_options(yield_per=batch_size)
    )
    for part in session.execute(stmt).partitions(batch_size):
        yield [(row.id, row.language) for row in part]


def find_by_phone(session: Session, *, phone: str) -> Subscriber | None:
    """The subscriber with this number (any way of writing it), or None.

    Raises: InvalidPhone.
    """
    return session.scalar(select(Subscriber).where(Subscriber.phone == normalise_phone(phone)))


def _state(sub: Subscriber) -> dict[str, object]:
    return {
        "admin_code": sub.admin_code,
        "language": sub.language,
        "active": sub.active,
        "stop_reason": sub.stop_reason,
    }


def register_by_sms(session: Session, *, phone: str, admin_code: str, language: str) -> tuple[Subscriber, bool]:
    """Subscribe the sender of a DAFTAR/REG SMS to `admin_code`, or move and re-activate them if known.

    Returns the subscriber and whether anything changed. Raises: InvalidPhone, Invalid (unknown area code).
    """
    e164 = normalise_phone(phone)
    if gazetteer.find_place(admin_code) is None:
        raise Invalid(f"Kode wilayah '{admin_code}' tidak dikenal / unknown area code", code="unknown-area-code")
    sub = session.scalar(select(Subscriber).where(Subscriber.phone == e164))
    if sub is None:
        sub = Subscriber(phone=e164, admin_code=admin_code, language=language)
        session.add(sub)
        session.flush()
        audit.record(
            session,
            actor_id=None,
            action="subscriber.register_sms",
            subject_type="subscriber",
            subject_id=sub.id,
            after=_state(sub),
        )
        return sub, True
    before = _state(sub)
    sub.admin_code, sub.language, sub.active, sub.stopped_at, sub.stop_reason = admin_code, language, True, None, None
    after = _state(sub)
    if after == before:
        return sub, False
    session.flush()
    audit.record(
        session,
        actor_id=None,
        action="subscriber.register_sms",
        subject_type="subscriber",
        subject_id=sub.id,
        before=before,
        after=after,
    )
    return sub, True


def stop_subscriber(session: Session, *, subscriber: Subscriber, reason: str, detail: str | None = None) -> bool:
    """Stop every message to this subscriber from now on; True when they were active.

    `reason` is one of STOP_SMS, STOP_TWILIO, STOP_UNDELIVERABLE; `detail` (e.g. the provider error code) is audited.
    """
    if not subscriber.active:
        return False
    before = _state(subscriber)
    subscriber.active, subscriber.stopped_at, subscriber.stop_reason = False, utcnow(), reason
    session.flush()
    audit.record(
        session,
        actor_id=None,
        action="subscriber.stop",
        subject_type="subscriber",
        subject_id=subscriber.id,
        before=before,
        after=_state(subscriber) | ({"detail": detail} if detail else {}),
    )
    return True


def start_subscriber(session: Session, *, subscriber: Subscriber) -> bool:
    """Re-activate a stopped subscriber (they texted MULAI/START); True when they were inactive."""
    if subscriber.active:
        return False
    before = _state(subscriber)
    subscriber.active, subscriber.stopped_at, subscriber.stop_reason = True, None, None
    session.flush()
    audit.record(
        session,
        actor_id=None,
        action="subscriber.start",
        subject_type="subscriber",
        subject_id=subscriber.id,
        before=before,
        after=_state(subscriber),
    )
    return True

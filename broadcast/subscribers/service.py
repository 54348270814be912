"""Subscribers: who gets SMS for which place."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import phonenumbers
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from broadcast.audit import service as audit
from broadcast.errors import Conflict, Invalid
from broadcast.subscribers.models import Subscriber
from geo import gazetteer


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

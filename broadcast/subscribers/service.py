"""Subscribers: who gets alerts for which place, on which channels."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import phonenumbers
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from broadcast.audit import service as audit
from broadcast.authority import Action as Can
from broadcast.authority import Target, may, require
from broadcast.db import utcnow
from broadcast.errors import Conflict, Forbidden, Invalid, NotFound
from broadcast.subscribers import targeting, warm
from broadcast.subscribers.models import Subscriber
from broadcast.users.models import User
from geo import boundaries, gazetteer
from geo.areas import BBOX

LANGUAGES = ("id", "en")
X_HANDLE_RE = re.compile(r"^@?([A-Za-z0-9_]{1,15})$")
# Finest level first: a point is registered under the smallest unit that has a boundary there.
LOCATE_LEVELS = ("desa_kelurahan", "kecamatan", "kabupaten_kota", "provinsi")
STOP_SMS = "sms-stop"  # they texted BERHENTI/STOP to us
STOP_TWILIO = "twilio-opt-out"  # Twilio reported 21610: they opted out with Twilio itself
STOP_UNDELIVERABLE = "undeliverable"  # the number can never receive (invalid, landline, blocked)
STOP_STAFF = "staff"  # an operator stopped them from the console or API


class InvalidPhone(Invalid):
    code = "invalid-phone"


class InvalidSubscriber(Invalid):
    code = "invalid-subscriber"


class SubscriberExists(Conflict):
    code = "subscriber-exists"


class SubscriberNotFound(NotFound):
    code = "subscriber-not-found"


class SubscriberOutsideJurisdiction(Forbidden):
    code = "outside-jurisdiction"


# What may stand between the digits of a number someone typed: whitespace (any kind), dashes, dots, slashes and
# brackets. Anything else (letters, markup, formulas, other digits scripts) means the field is not just a number.
_PHONE_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015\u2212./()]+")
_PHONE_SHAPE = re.compile(r"\+?[0-9]{5,17}")
_MOBILE = (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)


def normalise_phone(raw: str, *, region: str = "ID") -> str:
    """The E.164 form of a phone number written the Indonesian way (08…, 62…) or internationally (+62…), when
    the number is the whole field (separators aside); any country, any line type (for lookups and senders).

    Raises: InvalidPhone (its message says why).
    """
    compact = _PHONE_SEPARATORS.sub("", raw.strip())
    if not _PHONE_SHAPE.fullmatch(compact):
        raise InvalidPhone(
            f"Nomor telepon harus berisi angka saja (boleh spasi, -, ., /, kurung, + di depan) / a phone number may "
            f"hold only digits, a leading + and spaces, dashes, dots, slashes or brackets: {raw[:40]!r}",
        )
    # "62812..." without the plus is how many Indonesian spreadsheets store numbers.
    if re.fullmatch(r"62[0-9]{8,13}", compact):
        compact = "+" + compact
    try:
        number = phonenumbers.parse(compact, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(f"Nomor telepon tidak valid / invalid phone number: {raw[:40]!r}") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone(f"Nomor telepon tidak valid / invalid phone number: {raw[:40]!r}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def subscriber_phone(raw: str, *, allow_foreign: bool = False) -> str:
    """The E.164 form of a number that may subscribe: the whole field, a valid Indonesian mobile number; numbers
    of other countries only with `allow_foreign` (setting `subscriber_foreign_numbers`), and those mobile too.

    Raises: InvalidPhone whose message says why (not a number, invalid, foreign, not mobile).
    """
    e164 = normalise_phone(raw)
    number = phonenumbers.parse(e164)
    if phonenumbers.region_code_for_number(number) != "ID" and not allow_foreign:
        raise InvalidPhone(
            f"Hanya nomor Indonesia (+62) yang dapat berlangganan / only Indonesian (+62) numbers may subscribe: "
            f"{mask_phone(e164)}",
        )
    if phonenumbers.number_type(number) not in _MOBILE:
        raise InvalidPhone(
            f"Bukan nomor seluler (SMS tidak sampai ke telepon rumah) / not a mobile number (SMS cannot reach a "
            f"landline or special number): {mask_phone(e164)}",
        )
    return e164


def mask_phone(e164: str) -> str:
    """A phone number safe for logs and the audit trail: country and operator prefix, last three digits."""
    return e164[:6] + "*" * max(len(e164) - 9, 0) + e164[-3:]


@dataclass(frozen=True, slots=True)
class SubscriberFields:
    """Validated subscriber fields (admin_code may still be None when only a point was given)."""

    phone: str
    language: str
    admin_code: str | None
    lat: float | None
    lon: float | None
    channels: tuple[str, ...]
    x_handle: str | None


def check_fields(
    *,
    phone: str,
    language: str = "id",
    admin_code: str | None = None,
    lat: float | None = None,
    lon: float | None = None,
    channels: Sequence[str] = ("sms",),
    x_handle: str | None = None,
    allow_foreign: bool = False,
) -> SubscriberFields:
    """Validate and normalise one subscriber's fields (without locating a point); the phone by `subscriber_phone`.

    Raises: InvalidPhone, InvalidSubscriber (its code says which field).
    """
    e164 = subscriber_phone(phone, allow_foreign=allow_foreign)
    if language not in LANGUAGES:
        raise InvalidSubscriber(
            f"Bahasa harus id atau en / language must be id or en, not {language!r}", code="bad-language"
        )
    code = (admin_code or "").strip() or None
    if code is not None and (not gazetteer.is_well_formed(code) or gazetteer.find_place(code) is None):
        raise InvalidSubscriber(f"Kode wilayah '{code}' tidak dikenal / unknown area code", code="unknown-area-code")
    if (lat is None) != (lon is None):
        raise InvalidSubscriber("Isi lat dan lon bersama / give lat and lon together", code="bad-location")
    if lat is not None and lon is not None:
        if not (math.isfinite(lat) and math.isfinite(lon)):
            raise InvalidSubscriber("Koordinat tidak sah / coordinates are not finite", code="bad-location")
        if not (BBOX[0] <= lon <= BBOX[2] and BBOX[1] <= lat <= BBOX[3]):
            hint = " (lat/lon tertukar? / lat and lon swapped?)" if BBOX[0] <= lat <= BBOX[2] else ""
            raise InvalidSubscriber(
                f"Titik ({lat}, {lon}) di luar Indonesia / point outside Indonesia{hint}", code="outside-indonesia"
            )
    elif code is None:
        raise InvalidSubscriber(
            "Beri titik (lat, lon) atau kode wilayah / give a point (lat, lon) or an area code",
            code="missing-location",
        )
    chans = tuple(dict.fromkeys(c.strip().lower() for c in channels if c.strip()))
    known = targeting.personal_channels()
    bad = [c for c in chans if c not in known]
    if bad or not chans:
        raise InvalidSubscriber(
            f"Saluran tidak dikenal / unknown channel(s): {', '.join(bad) or 'none'} (use {', '.join(known)})",
            code="bad-channel",
        )
    handle = None
    if x_handle and x_handle.strip():
        m = X_HANDLE_RE.match(x_handle.strip())
        if m is None:
            raise InvalidSubscriber(f"Akun X tidak sah / invalid X handle: {x_handle!r}", code="bad-x-handle")
        handle = m.group(1)
    if "social" in chans and handle is None:
        raise InvalidSubscriber(
            "Saluran social perlu akun X / the social channel needs an X handle", code="bad-x-handle"
        )
    return SubscriberFields(e164, language, code, lat, lon, chans, handle)


def locate_code(lon: float, lat: float) -> str | None:
    """The code of the smallest administrative unit with a boundary at this point, or None (at sea)."""
    found = boundaries.locate(lon, lat)
    return next((found[level] for level in LOCATE_LEVELS if found[level]), None)


def check_jurisdiction(user: User | None, sub: SubscriberFields | Subscriber, *, read: bool = False) -> None:
    """A subscriber's code (given or located) lies inside the user's jurisdiction (the authority policy: national
    users anywhere; reading phone numbers is for authors and approvers, not analysts). None is the system itself
    (SMS commands, imports).

    Raises: RoleNotAllowed, SubscriberOutsideJurisdiction.
    """
    if user is None:
        return
    codes = [sub.admin_code]
    if sub.lat is not None and sub.lon is not None:
        codes.append(locate_code(sub.lon, sub.lat))
    action = Can.SUBSCRIBER_READ if read else Can.SUBSCRIBER_WRITE
    decision = may(user, action, Target.area(codes, located=all(codes)))
    if decision.allowed:
        return
    if decision.problem != "outside-jurisdiction":
        require(user, action, Target())  # raises the role refusal
    outside = [c or "laut/sea" for c in codes if c is None or not gazetteer.contains(user.jurisdiction or "", c)]
    raise SubscriberOutsideJurisdiction(
        f"Pelanggan di luar yurisdiksi {user.jurisdiction}: {', '.join(outside)} / "
        f"subscriber outside jurisdiction {user.jurisdiction}: {', '.join(outside)}"
    )


def scope_to_jurisdiction(user: User, code: str | None) -> str | None:
    """The area code a listing by `user` is limited to: their jurisdiction when none is asked for; national
    users see everything.

    Raises: RoleNotAllowed (analysts read aggregates), SubscriberOutsideJurisdiction (`code` lies outside the
    user's jurisdiction).
    """
    require(user, Can.SUBSCRIBER_READ, Target())
    if user.jurisdiction is None:
        return code
    if code is None:
        return user.jurisdiction
    if not gazetteer.contains(user.jurisdiction, code):
        raise SubscriberOutsideJurisdiction(
            f"Wilayah {code} di luar yurisdiksi {user.jurisdiction} / area {code} outside jurisdiction "
            f"{user.jurisdiction}"
        )
    return code


def located(fields: SubscriberFields) -> SubscriberFields:
    """`fields` with the code of the smallest unit at its point when only a point was given."""
    if fields.admin_code is not None or fields.lat is None or fields.lon is None:
        return fields
    code = locate_code(fields.lon, fields.lat)
    return SubscriberFields(
        fields.phone, fields.language, code, fields.lat, fields.lon, fields.channels, fields.x_handle
    )


def audit_view(sub: Subscriber) -> dict[str, Any]:
    """A subscriber as the audit trail keeps it (the number masked)."""
    return {
        "phone": mask_phone(sub.phone),
        "language": sub.language,
        "admin_code": sub.admin_code,
        "point": None if sub.lat is None else [sub.lat, sub.lon],
        "channels": list(sub.channels),
        "x_handle": sub.x_handle,
        "active": sub.active,
    }


def add_subscriber(
    session: Session,
    *,
    phone: str,
    admin_code: str | None = None,
    language: str = "id",
    actor_id: int | None = None,
    lat: float | None = None,
    lon: float | None = None,
    channels: Sequence[str] = ("sms",),
    x_handle: str | None = None,
) -> Subscriber:
    """Register a phone number for a place (an area code, a point, or both; a point alone gets its code).

    Raises: InvalidPhone, InvalidSubscriber (e.g. unknown area code), SubscriberExists.
    """
    fields = located(
        check_fields(
            phone=phone,
            language=language,
            admin_code=admin_code,
            lat=lat,
            lon=lon,
            channels=channels,
            x_handle=x_handle,
        )
    )
    return _insert_one(session, fields, actor_id=actor_id)


def _insert_one(session: Session, fields: SubscriberFields, *, actor_id: int | None) -> Subscriber:
    if session.scalar(select(Subscriber.id).where(Subscriber.phone == fields.phone)) is not None:
        raise SubscriberExists("Nomor sudah terdaftar / number already registered")
    sub = Subscriber(
        phone=fields.phone,
        admin_code=fields.admin_code,
        language=fields.language,
        lat=fields.lat,
        lon=fields.lon,
        channels=list(fields.channels),
        x_handle=fields.x_handle,
    )
    session.add(sub)
    session.flush()
    audit.record(
        session,
        actor_id=actor_id,
        action="subscriber.create",
        subject_type="subscriber",
        subject_id=sub.id,
        after=audit_view(sub),
    )
    return sub


def get_subscriber(session: Session, *, subscriber_id: int) -> Subscriber:
    """The subscriber with this id.

    Raises: SubscriberNotFound.
    """
    sub = session.get(Subscriber, subscriber_id)
    if sub is None:
        raise SubscriberNotFound(f"Pelanggan {subscriber_id} tidak ditemukan / subscriber not found")
    return sub


def list_subscribers(
    session: Session, *, code: str | None = None, active: bool | None = None, limit: int = 100, offset: int = 0
) -> tuple[list[Subscriber], int]:
    """One page of subscribers (by id) registered in or under `code`, and how many match in all."""
    where = []
    if code:
        where.append(or_(Subscriber.admin_code == code, Subscriber.admin_code.like(f"{code}.%")))
    if active is not None:
        where.append(Subscriber.active.is_(active))
    total = session.scalar(select(func.count()).select_from(Subscriber).where(*where)) or 0
    page = session.scalars(select(Subscriber).where(*where).order_by(Subscriber.id).limit(limit).offset(offset))
    return list(page), int(total)


def merged_fields(sub: Subscriber, changes: Mapping[str, Any], *, allow_foreign: bool = False) -> SubscriberFields:
    """A subscriber's fields with `changes` applied, validated and located (a new point without a code gets the
    code of the new point).

    Raises: InvalidPhone, InvalidSubscriber.
    """
    merged: dict[str, Any] = {
        "phone": sub.phone,
        "language": sub.language,
        "admin_code": sub.admin_code,
        "lat": sub.lat,
        "lon": sub.lon,
        "channels": sub.channels,
        "x_handle": sub.x_handle,
    }
    if ("lat" in changes or "lon" in changes) and "admin_code" not in changes:
        merged["admin_code"] = None  # the old code described the old point
    merged |= changes
    return located(check_fields(**merged, allow_foreign=allow_foreign))


def update_subscriber(
    session: Session, *, subscriber_id: int, actor: User, changes: Mapping[str, Any], allow_foreign: bool = False
) -> Subscriber:
    """Change a subscriber's language, channels, X handle or place; both old and new place must be in the
    actor's jurisdiction. Giving a new point without a code re-locates the code. A change of number is not made
    here: it needs the new number's consent (broadcast.subscribers.consent.change_subscriber).

    Raises: SubscriberNotFound, InvalidPhone, InvalidSubscriber (code phone-needs-consent for another number),
    SubscriberOutsideJurisdiction.
    """
    sub = get_subscriber(session, subscriber_id=subscriber_id)
    check_jurisdiction(actor, sub)
    before = audit_view(sub)
    checked = merged_fields(sub, changes, allow_foreign=allow_foreign)
    check_jurisdiction(actor, checked)
    if checked.phone != sub.phone:
        raise InvalidSubscriber(
            "Ganti nomor perlu persetujuan pemilik nomor baru / a new number needs its owner's consent",
            code="phone-needs-consent",
        )
    sub.language, sub.admin_code = checked.language, checked.admin_code
    sub.lat, sub.lon, sub.channels, sub.x_handle = checked.lat, checked.lon, list(checked.channels), checked.x_handle
    session.flush()
    audit.record(
        session,
        actor_id=actor.id,
        action="subscriber.update",
        subject_type="subscriber",
        subject_id=sub.id,
        before=before,
        after=audit_view(sub),
    )
    return sub


def stop_by_staff(session: Session, *, subscriber_id: int, actor: User | None) -> Subscriber:
    """Stop all alerts to a subscriber on an operator's request (idempotent); pending deliveries are skipped.

    Raises: SubscriberNotFound, SubscriberOutsideJurisdiction.
    """
    sub = get_subscriber(session, subscriber_id=subscriber_id)
    check_jurisdiction(actor, sub)
    stop_subscriber(session, subscriber=sub, reason=STOP_STAFF, actor_id=None if actor is None else actor.id)
    return sub


def iter_targeted(session: Session, *, codes: Sequence[str], batch_size: int = 1000) -> Iterator[list[tuple[int, str]]]:
    """(subscriber id, language) of every active subscriber the codes reach (point inside a code's boundary,
    or admin code equal to or under one), in batches."""
    if not codes:
        return
    subs = warm.snapshot(session)
    yield from subs.batches(subs.match(targeting.TargetSpec(tuple(codes), None)), batch_size=batch_size)


def find_by_phone(session: Session, *, phone: str) -> Subscriber | None:
    """The subscriber with this number (any way of writing it), or None.

    Raises: InvalidPhone.
    """
    return session.scalar(select(Subscriber).where(Subscriber.phone == normalise_phone(phone)))


def find_by_telegram(session: Session, *, chat_id: int) -> Subscriber | None:
    """The subscriber reached in this Telegram chat, or None."""
    return session.scalar(select(Subscriber).where(Subscriber.telegram_chat_id == chat_id))


TELEGRAM_PHONE_PREFIX = "tg:"  # the unique key of a subscriber known only by a Telegram chat (no number)


def register_by_telegram(session: Session, *, chat_id: int, admin_code: str, language: str) -> tuple[Subscriber, bool]:
    """Subscribe the Telegram chat that sent /daftar to `admin_code` (alerts by Telegram only), or move and
    re-activate it if known. Returns the subscriber and whether anything changed.

    Raises: Invalid (unknown area code).
    """
    if gazetteer.find_place(admin_code) is None:
        raise Invalid(f"Kode wilayah '{admin_code}' tidak dikenal / unknown area code", code="unknown-area-code")
    sub = find_by_telegram(session, chat_id=chat_id)
    new = Subscriber(
        phone=f"{TELEGRAM_PHONE_PREFIX}{chat_id}", telegram_chat_id=chat_id, channels=["telegram"]
    )  # fmt: skip
    return _self_register(
        session, sub, new=new, admin_code=admin_code, language=language, action="subscriber.register_telegram"
    )


def _self_register(
    session: Session, sub: Subscriber | None, *, new: Subscriber, admin_code: str, language: str, action: str
) -> tuple[Subscriber, bool]:
    """A person subscribing themselves (SMS DAFTAR, Telegram /daftar): `new` is added when `sub` is None, else
    `sub` moves to `admin_code` and is active again; each change is audited under `action`. Returns the
    subscriber and whether anything changed."""
    before = None if sub is None else _state(sub)
    if sub is None:
        sub = new
        session.add(sub)
    sub.admin_code, sub.language, sub.active, sub.stopped_at, sub.stop_reason = admin_code, language, True, None, None
    after = _state(sub)
    if after == before:
        return sub, False
    session.flush()
    audit.record(
        session, actor_id=None, action=action, subject_type="subscriber", subject_id=sub.id, before=before, after=after
    )
    return sub, True


def _state(sub: Subscriber) -> dict[str, object]:
    return {
        "admin_code": sub.admin_code,
        "language": sub.language,
        "active": sub.active,
        "stop_reason": sub.stop_reason,
    }


def register_by_sms(
    session: Session, *, phone: str, admin_code: str, language: str, allow_foreign: bool = False, channel: str = "sms"
) -> tuple[Subscriber, bool]:
    """Subscribe the sender of a DAFTAR/REG by SMS (or by WhatsApp: `channel`) to `admin_code`, or move and
    re-activate them if known; the channel they wrote on is added to their channels.

    Returns the subscriber and whether anything changed. Raises: InvalidPhone, Invalid (unknown area code).
    """
    e164 = subscriber_phone(phone, allow_foreign=allow_foreign)
    if gazetteer.find_place(admin_code) is None:
        raise Invalid(f"Kode wilayah '{admin_code}' tidak dikenal / unknown area code", code="unknown-area-code")
    sub = session.scalar(select(Subscriber).where(Subscriber.phone == e164))
    sub, changed = _self_register(
        session, sub, new=Subscriber(phone=e164, channels=[channel]), admin_code=admin_code, language=language,
        action=f"subscriber.register_{channel}",
    )  # fmt: skip
    if channel not in sub.channels:
        sub.channels = [*sub.channels, channel]
        session.flush()
        changed = True
    return sub, changed


def stop_subscriber(
    session: Session, *, subscriber: Subscriber, reason: str, detail: str | None = None, actor_id: int | None = None
) -> bool:
    """Stop every message to this subscriber from now on; True when they were active.

    `reason` is one of STOP_SMS, STOP_TWILIO, STOP_UNDELIVERABLE, STOP_STAFF; `detail` (e.g. the provider error
    code) is audited.
    """
    if not subscriber.active:
        return False
    before = _state(subscriber)
    subscriber.active, subscriber.stopped_at, subscriber.stop_reason = False, utcnow(), reason
    session.flush()
    audit.record(
        session,
        actor_id=actor_id,
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

"""Staff registrations by consent (double opt-in): the person behind a number says YA before it is subscribed.

A staff user's request through the API never tells them whether the number is registered anywhere: every valid
request inside their jurisdiction gets the same answer (`ConsentAnswer`), and at most one confirmation SMS goes
to a number per RESEND_GUARD, whoever asks. The person's YA (an inbound SMS command) within CONSENT_WINDOW
creates the subscription, or moves theirs, with an audit entry naming the requesting staff user and the consent.
Bulk imports by a named actor (`broadcast subscribers import`) stay direct: see docs/subscribers.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from broadcast import events
from broadcast.audit import service as audit
from broadcast.db import utcnow
from broadcast.subscribers import service
from broadcast.subscribers.models import ConsentRequest, Subscriber
from broadcast.users.models import User
from channels.base import Channel, OutboundMessage, Outcome, send_one_safely
from channels.sms.segments import normalise_gsm7
from geo import gazetteer
from geo.placenames import describe
from templates import message_env

# How long a YA reply to a confirmation SMS counts.
CONSENT_WINDOW = timedelta(hours=72)
# At most one confirmation SMS to a number in this time, however many staff ask (the answer stays the same).
RESEND_GUARD = timedelta(hours=24)
# Numbers whose owners stopped alerts themselves (or that cannot receive) get no confirmation SMS from staff.
_NO_SMS_REASONS = frozenset({service.STOP_SMS, service.STOP_TWILIO, service.STOP_UNDELIVERABLE})
PENDING_MESSAGE = (
    "Permintaan diterima. Bila nomor ini dapat menerima SMS, pemiliknya diminta membalas YA; pendaftaran berlaku "
    "setelah balasan itu (paling lambat 72 jam). / Request received. If the number can receive SMS, its owner is "
    "asked to reply YA; the registration takes effect once they do (within 72 hours)."
)


@dataclass(frozen=True, slots=True)
class ConsentAnswer:
    """What a staff request is answered, the same for every number (new, registered here or elsewhere):
    `expires_at` is the end of the window for a YA. The confirmation SMS, when one is due, is a ConsentRequested
    event sent after the commit."""

    expires_at: datetime


def request_subscription(
    session: Session, *, actor: User, fields: Mapping[str, Any], allow_foreign: bool = False
) -> ConsentAnswer:
    """Ask the number's owner to confirm a registration a staff user requests inside their jurisdiction.

    Raises: InvalidPhone, InvalidSubscriber, RoleNotAllowed, SubscriberOutsideJurisdiction (all about the request
    itself, never about other registrations of the number).
    """
    checked = service.located(service.check_fields(**fields, allow_foreign=allow_foreign))
    service.check_jurisdiction(actor, checked)
    return _request(session, actor=actor, fields=checked, subscriber_id=None)


def change_subscriber(
    session: Session, *, subscriber_id: int, actor: User, changes: Mapping[str, Any], allow_foreign: bool = False
) -> Subscriber | ConsentAnswer:
    """Apply a staff change to a subscriber; a change to another number is not applied but asked of that number's
    owner (a ConsentAnswer), with the subscriber's other changes applied once they say YA.

    Raises: SubscriberNotFound, InvalidPhone, InvalidSubscriber, RoleNotAllowed, SubscriberOutsideJurisdiction.
    """
    sub = service.get_subscriber(session, subscriber_id=subscriber_id)
    service.check_jurisdiction(actor, sub)
    checked = service.merged_fields(sub, changes, allow_foreign=allow_foreign)
    if checked.phone == sub.phone:
        return service.update_subscriber(
            session, subscriber_id=subscriber_id, actor=actor, changes=changes, allow_foreign=allow_foreign
        )
    service.check_jurisdiction(actor, checked)
    return _request(session, actor=actor, fields=checked, subscriber_id=sub.id)


def _request(
    session: Session, *, actor: User, fields: service.SubscriberFields, subscriber_id: int | None
) -> ConsentAnswer:
    now = utcnow()
    answer = ConsentAnswer(expires_at=now + CONSENT_WINDOW)
    held = _why_no_sms(session, phone=fields.phone, now=now)
    entry: dict[str, Any] = {"phone": service.mask_phone(fields.phone), "subscriber_id": subscriber_id}
    if held is not None:
        # Recorded for the audit trail; the caller's answer is the same as for a request that sends an SMS.
        audit.record(
            session,
            actor_id=actor.id,
            action="subscriber.consent_request",
            subject_type="subscriber_consent",
            subject_id=None,
            after={**entry, "sms": False, "reason": held},
        )
        return answer
    request = ConsentRequest(
        phone=fields.phone,
        language=fields.language,
        admin_code=fields.admin_code,
        lat=fields.lat,
        lon=fields.lon,
        channels=list(fields.channels),
        x_handle=fields.x_handle,
        subscriber_id=subscriber_id,
        requested_by=actor.id,
        state="pending",
        sms_state="pending",
        text=confirmation_text(agency=agency_of(actor), area=_area_name(fields.admin_code)),
        created_at=now,
        expires_at=answer.expires_at,
    )
    session.add(request)
    session.flush()
    audit.record(
        session,
        actor_id=actor.id,
        action="subscriber.consent_request",
        subject_type="subscriber_consent",
        subject_id=request.id,
        after={**entry, "sms": True, "admin_code": fields.admin_code, "expires_at": request.expires_at.isoformat()},
    )
    events.record(session, events.ConsentRequested(request.id))
    return answer


def _why_no_sms(session: Session, *, phone: str, now: datetime) -> str | None:
    """Why no confirmation SMS may go to `phone` now (None: it may)."""
    recent = session.scalar(
        select(ConsentRequest.id)
        .where(ConsentRequest.phone == phone, ConsentRequest.created_at > now - RESEND_GUARD)
        .limit(1)
    )
    if recent is not None:
        return "recent-request"
    sub = session.scalar(select(Subscriber).where(Subscriber.phone == phone))
    if sub is not None and not sub.active and sub.stop_reason in _NO_SMS_REASONS:
        return "number-stopped"
    return None


def agency_of(actor: User) -> str:
    """Who asks, as the confirmation SMS names them: "BPBD Kota Palu" for a kabupaten/kota or provinsi user."""
    place = gazetteer.find_place(actor.jurisdiction) if actor.jurisdiction else None
    return f"BPBD {place.nama}" if place is not None else "Layanan Peringatan Bencana"


def _area_name(code: str | None) -> str:
    place = gazetteer.find_place(code) if code else None
    return describe(place) if place is not None else "-"


def confirmation_text(*, agency: str, area: str) -> str:
    """The confirmation SMS (Indonesian first, then English; GSM-7): who asks, for which area, YA to accept,
    ignore to refuse."""
    text = message_env().get_template("sms/consent_request.j2").render(agency=agency, area=area)
    return normalise_gsm7(" ".join(text.split()))


def pending_sms(session: Session, *, limit: int = 200) -> list[int]:
    """Ids of requests whose confirmation SMS is not sent yet and still worth sending, oldest first."""
    stmt = (
        select(ConsentRequest.id)
        .where(ConsentRequest.sms_state == "pending", ConsentRequest.expires_at > utcnow())
        .order_by(ConsentRequest.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def send_confirmation(session: Session, *, request_id: int, channels: Mapping[str, Channel]) -> ConsentRequest | None:
    """Send one request's confirmation SMS at most once (the row leaves "pending" in the transaction that sends
    it); an unavailable channel leaves it pending for the sweep. Returns the row, or None when it was not pending.
    """
    request = session.scalar(
        select(ConsentRequest)
        .where(ConsentRequest.id == request_id, ConsentRequest.sms_state == "pending")
        .with_for_update()
    )
    if request is None:
        return None
    channel = channels.get("sms")
    held = _why_no_sms_now(session, request)
    if channel is None:
        request.sms_state, request.error = "failed", "channel sms not enabled"
    elif held is not None:
        request.sms_state, request.error = "skipped", held
    else:
        message = OutboundMessage(
            recipient=request.phone, text=request.text, reference=f"consent-{request.id}", language="id"
        )
        result = send_one_safely(channel, message)
        if result.outcome is Outcome.SENT:
            request.sms_state, request.provider_id = "sent", result.provider_id
        elif result.outcome is Outcome.FAILED:
            request.sms_state, request.error = "failed", result.error
        else:
            request.error = result.error
    session.flush()
    return request


def _why_no_sms_now(session: Session, request: ConsentRequest) -> str | None:
    if request.expires_at <= utcnow():
        return "expired"
    sub = session.scalar(select(Subscriber).where(Subscriber.phone == request.phone))
    if sub is not None and not sub.active and sub.stop_reason in _NO_SMS_REASONS:
        return "number-stopped"
    return None


def confirm(session: Session, *, phone: str) -> tuple[str, dict[str, object]]:
    """A YA from `phone`: apply its newest request whose SMS went out, if still within the window (create the
    subscription, move theirs, or move the subscriber a staff user changed to this number). Returns the reply
    name and its context: "consent_confirmed", or "consent_expired"/"consent_none" with nothing changed.
    """
    now = utcnow()
    request = session.scalar(
        select(ConsentRequest)
        .where(ConsentRequest.phone == phone, ConsentRequest.state == "pending", ConsentRequest.sms_state == "sent")
        .order_by(ConsentRequest.id.desc())
        .limit(1)
        .with_for_update()
    )
    if request is None:
        return "consent_none", {}
    if request.expires_at <= now:
        _close_pending(session, phone=phone, state="expired")
        return "consent_expired", {"hours": int(CONSENT_WINDOW.total_seconds() // 3600)}
    sub = session.scalar(select(Subscriber).where(Subscriber.phone == phone))
    replaced = session.get(Subscriber, request.subscriber_id) if request.subscriber_id else None
    before: dict[str, Any] | None = None
    if sub is None and replaced is not None:
        sub, before = replaced, service.audit_view(replaced)
        sub.phone = phone  # the subscriber a staff user changed to this number, now with its owner's consent
    elif sub is None:
        sub = Subscriber(phone=phone)
        session.add(sub)
    else:
        before = service.audit_view(sub)
        if replaced is not None and replaced.id != sub.id:
            # This number already had its own subscription: it takes the changed subscriber's place.
            service.stop_subscriber(
                session, subscriber=replaced, reason=service.STOP_STAFF, detail=f"replaced by consent {request.id}",
                actor_id=request.requested_by,
            )  # fmt: skip
    sub.language, sub.admin_code, sub.lat, sub.lon = request.language, request.admin_code, request.lat, request.lon
    sub.channels, sub.x_handle = list(request.channels), request.x_handle
    sub.active, sub.stopped_at, sub.stop_reason = True, None, None
    request.state, request.confirmed_at = "confirmed", now
    session.flush()
    _close_pending(session, phone=phone, state="expired")  # an older request's SMS no longer counts
    audit.record(
        session,
        actor_id=request.requested_by,
        action="subscriber.create" if before is None else "subscriber.update",
        subject_type="subscriber",
        subject_id=sub.id,
        before=before,
        after={
            **service.audit_view(sub),
            "consent": {"by": "sms", "reply": "YA", "at": now.isoformat(), "request_id": request.id},
            "requested_by": request.requested_by,
        },
    )
    return "consent_confirmed", {"area": _area_name(sub.admin_code)}


def withdraw(session: Session, *, phone: str) -> None:
    """The number's owner texted BERHENTI/STOP: no request waiting for their YA counts any more."""
    _close_pending(session, phone=phone, state="expired")


def _close_pending(session: Session, *, phone: str, state: str) -> None:
    session.execute(
        update(ConsentRequest)
        .where(ConsentRequest.phone == phone, ConsentRequest.state == "pending")
        .values(state=state)
        .execution_options(synchronize_session=False)
    )

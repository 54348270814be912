"""Registering subscribers through the API the way people do now: the staff request (202), the confirmation SMS
through the outbox channel, the person's YA through the inbound SMS handling (issue 24: double opt-in)."""

from __future__ import annotations

import secrets
from typing import Any

import sqlalchemy as sa

from broadcast.db import session_scope
from broadcast.subscribers import consent
from broadcast.subscribers.models import ConsentRequest, Subscriber
from broadcast.subscribers.service import normalise_phone
from broadcast.webhooks.service import handle_inbound_sms
from channels.base import InboundEvent
from channels.registry import build_channels

UNIFORM_KEYS = {"status", "message", "expires_at"}


def send_confirmations(engine: Any) -> list[tuple[str, str]]:
    """Send every pending confirmation SMS as the worker does (outbox mode); (number, text) of each sent."""
    sent = []
    with session_scope(engine) as s:
        ids = consent.pending_sms(s)
    for request_id in ids:
        with session_scope(engine) as s:
            request = consent.send_confirmation(s, request_id=request_id, channels=build_channels(["sms"], modes={}, public_base_url="http://t"))
            if request is not None and request.sms_state == "sent":
                sent.append((request.phone, request.text))
    return sent


def reply_sms(engine: Any, phone: str, body: str = "YA") -> str:
    """An inbound SMS from `phone` through the webhook's use case; the TwiML reply."""
    sid = "SM" + secrets.token_hex(16)
    with session_scope(engine) as s:
        event = InboundEvent("sms", sid, phone, body, {"Body": body, "MessageSid": sid, "From": phone})
        return handle_inbound_sms(s, event=event, author_key=b"k" * 32, advanced_opt_out=False)


def pending_answer(response: Any, status: int = 202) -> dict[str, Any]:
    """The uniform consent answer: exactly status/message/expires_at, no subscriber data."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == UNIFORM_KEYS and body["status"] == "menunggu_konfirmasi", body
    return body


def register(client: Any, engine: Any, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    """POST /api/v1/subscribers, the confirmation SMS, the person's YA: the subscriber as the API shows it."""
    pending_answer(client.post("/api/v1/subscribers", json=body, headers=headers))
    phone = normalise_phone(body["phone"])
    assert phone in {number for number, _ in send_confirmations(engine)}
    assert "Terima kasih" in reply_sms(engine, phone)
    with engine.connect() as c:
        sub_id = c.scalar(sa.select(Subscriber.id).where(Subscriber.phone == phone))
        assert c.scalar(sa.select(ConsentRequest.state).where(ConsentRequest.phone == phone)
                        .order_by(ConsentRequest.id.desc())) == "confirmed"
    r = client.get(f"/api/v1/subscribers/{sub_id}", headers=headers)
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result

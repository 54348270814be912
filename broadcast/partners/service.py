"""Partner webhooks: register, fan each publish/update/cancel out to them, deliver signed, log everything."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from broadcast import outbound
from broadcast.alerts import public
from broadcast.alerts import service as alerts
from broadcast.alerts.models import Alert, MsgType
from broadcast.audit import service as audit
from broadcast.db import utcnow
from broadcast.errors import Invalid, NotFound
from broadcast.partners.models import PartnerDelivery, PartnerWebhook
from broadcast.partners.signing import HEADER, sign
from channels.web import json_alert
from geo import gazetteer

EVENTS = {MsgType.ALERT.value: "publish", MsgType.UPDATE.value: "update", MsgType.CANCEL.value: "cancel"}
Post = Callable[[str, bytes, dict[str, str]], int]


class WebhookNotFound(NotFound):
    code = "webhook-not-found"


def register(
    session: Session,
    *,
    name: str,
    url: str,
    statuses: list[str],
    area_code: str | None,
    actor_id: int,
    allow: Sequence[str] | None = None,
) -> tuple[PartnerWebhook, str]:
    """A new webhook and its secret (the only time the secret is shown). The URL must pass the outbound guard
    now, a name that does not resolve yet aside (`allow`: hosts allowed although private, default the setting
    BROADCAST_OUTBOUND_ALLOW_HOSTS); every delivery is checked again when it connects.

    Raises: Invalid (URL not http(s) or leading to a forbidden address, unknown area code).
    """
    try:
        outbound.check_url(url, allow=allow, unresolvable_ok=True)
    except outbound.ForbiddenURL as exc:
        raise Invalid(exc.reason, code="invalid-url") from exc
    if area_code is not None and gazetteer.find_place(area_code) is None:
        raise Invalid(f"Kode wilayah '{area_code}' tidak dikenal / unknown area code", code="unknown-area-code")
    secret = secrets.token_urlsafe(32)
    hook = PartnerWebhook(
        name=name, url=url, secret=secret, statuses=statuses, area_code=area_code, created_by=actor_id
    )
    session.add(hook)
    session.flush()
    audit.record(
        session,
        actor_id=actor_id,
        action="webhook.create",
        subject_type="webhook",
        subject_id=hook.id,
        after={"name": name, "url": url, "statuses": statuses, "area_code": area_code},
    )
    return hook, secret


def deactivate(session: Session, *, webhook_id: int, actor_id: int) -> PartnerWebhook:
    """Stop sending to a webhook (its log is kept).

    Raises: WebhookNotFound.
    """
    hook = get_webhook(session, webhook_id=webhook_id)
    hook.active = False
    session.flush()
    audit.record(
        session,
        actor_id=actor_id,
        action="webhook.deactivate",
        subject_type="webhook",
        subject_id=hook.id,
        after={"active": False},
    )
    return hook


def get_webhook(session: Session, *, webhook_id: int) -> PartnerWebhook:
    """The webhook with this id.

    Raises: WebhookNotFound.
    """
    hook = session.get(PartnerWebhook, webhook_id)
    if hook is None:
        raise WebhookNotFound("Webhook tidak ditemukan / webhook not found")
    return hook


def list_webhooks(session: Session) -> list[PartnerWebhook]:
    """Every webhook, newest first."""
    return list(session.scalars(select(PartnerWebhook).order_by(PartnerWebhook.id.desc())))


def deliveries_of(session: Session, *, webhook_id: int, limit: int = 200) -> list[PartnerDelivery]:
    """The delivery log of one webhook, newest first."""
    stmt = (
        select(PartnerDelivery)
        .where(PartnerDelivery.webhook_id == webhook_id)
        .order_by(PartnerDelivery.id.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))


def _wants(hook: PartnerWebhook, alert: Alert) -> bool:
    if alert.status not in hook.statuses:
        return False
    if hook.area_code is None:
        return True
    codes = alerts.alert_codes(alert)
    return any(gazetteer.contains(hook.area_code, c) or gazetteer.contains(c, hook.area_code) for c in codes)


def plan_for_alert(session: Session, *, alert_id: int) -> list[int]:
    """One pending delivery per interested active webhook for this published alert (idempotent)."""
    alert = session.get(Alert, alert_id)
    if alert is None or alert.published_at is None:
        return []
    event = EVENTS.get(alert.msg_type)
    if event is None:
        return []
    planned = []
    for hook in session.scalars(select(PartnerWebhook).where(PartnerWebhook.active.is_(True))):
        if not _wants(hook, alert):
            continue
        existing = session.scalar(
            select(PartnerDelivery).where(
                PartnerDelivery.webhook_id == hook.id,
                PartnerDelivery.alert_id == alert.id,
                PartnerDelivery.event == event,
            )
        )
        if existing is None:
            existing = PartnerDelivery(webhook_id=hook.id, alert_id=alert.id, event=event)
            session.add(existing)
            session.flush()
        if existing.state == "pending":
            planned.append(existing.id)
    return planned


@dataclass(frozen=True)
class Attempt:
    delivery_id: int
    url: str
    body: bytes
    headers: dict[str, str]


def prepare(session: Session, *, delivery_id: int, public_base_url: str) -> Attempt | None:
    """The signed request for a pending delivery (None when there is nothing left to send)."""
    delivery = session.get(PartnerDelivery, delivery_id)
    if delivery is None or delivery.state != "pending":
        return None
    hook = session.get(PartnerWebhook, delivery.webhook_id)
    alert = session.get(Alert, delivery.alert_id)
    if hook is None or alert is None or not hook.active:
        return None
    data = alerts.to_alert_data(alert, public_base_url=public_base_url)
    body = json.dumps(
        {
            "event": delivery.event,
            "delivery_id": delivery.id,
            # Where the alert stands now by the one public truth (a retried Update sent after a Cancel says so).
            "alert": json_alert(data) | public.state_json(public.public_state(session, alert)),
            "cap": alerts.export_cap(alert).decode(),
        },
        ensure_ascii=False,
    ).encode()
    headers = {
        "Content-Type": "application/json",
        HEADER: sign(hook.secret, body),
        "X-Broadcast-Event": delivery.event,
        "X-Broadcast-Delivery": str(delivery.id),
        "User-Agent": "broadcast-webhooks/1",
    }
    return Attempt(delivery.id, hook.url, body, headers)


def http_post(url: str, body: bytes, headers: dict[str, str], *, allow: Sequence[str] | None = None) -> int:
    """POST through the outbound guard (no redirect followed) and return the HTTP status.

    Raises: OSError when the partner cannot be reached or its address is not allowed.
    """
    try:
        return outbound.post(url, body, headers, allow=allow).status_code
    except outbound.ForbiddenURL as exc:
        raise OSError(exc.reason) from exc
    except httpx.HTTPError as exc:
        raise OSError(str(exc)) from exc


def record(session: Session, *, delivery_id: int, status: int | None, error: str | None, final: bool) -> str:
    """Log one attempt; returns the delivery's state (`pending` means: try again later)."""
    delivery = session.get(PartnerDelivery, delivery_id)
    assert delivery is not None
    delivery.attempts += 1
    delivery.last_status_code = status
    delivery.last_error = error
    if status is not None and 200 <= status < 300:
        delivery.state = "delivered"
        delivery.delivered_at = utcnow()
    elif (status is not None and 400 <= status < 500 and status not in (408, 425, 429)) or final:
        delivery.state = "failed"
    session.flush()
    return delivery.state


def stale_pending(session: Session, *, older_than_s: int = 300) -> list[int]:
    """Pending deliveries whose task may have been lost (for the sweep)."""
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    stmt = select(PartnerDelivery.id).where(PartnerDelivery.state == "pending", PartnerDelivery.updated_at < cutoff)
    return list(session.scalars(stmt))

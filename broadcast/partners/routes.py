"""Partner webhook administration (admins only)."""

from __future__ import annotations

from fastapi import APIRouter

from broadcast.api.deps import AdminDep, SessionDep, SettingsDep
from broadcast.partners import service
from broadcast.partners.schemas import DeliveryRead, WebhookCreate, WebhookCreated, WebhookRead

router = APIRouter(prefix="/api/v1/partners/webhooks", tags=["partners"])


@router.post("", status_code=201)
def create_webhook(body: WebhookCreate, admin: AdminDep, session: SessionDep, settings: SettingsDep) -> WebhookCreated:
    """Register a partner URL (public addresses only, see broadcast.outbound); the response carries its signing
    secret, shown only this once."""
    hook, secret = service.register(
        session,
        name=body.name,
        url=body.url,
        statuses=list(body.statuses),
        area_code=body.area_code,
        actor_id=admin.id,
        allow=settings.outbound_allow_hosts,
    )
    session.commit()
    return WebhookCreated(**WebhookRead.model_validate(hook).model_dump(), secret=secret)


@router.get("")
def list_webhooks(admin: AdminDep, session: SessionDep) -> list[WebhookRead]:
    """Every registered webhook (secrets are never shown again)."""
    return [WebhookRead.model_validate(h) for h in service.list_webhooks(session)]


@router.delete("/{webhook_id}")
def deactivate_webhook(webhook_id: int, admin: AdminDep, session: SessionDep) -> WebhookRead:
    """Stop sending to a webhook; its delivery log stays."""
    hook = service.deactivate(session, webhook_id=webhook_id, actor_id=admin.id)
    session.commit()
    return WebhookRead.model_validate(hook)


@router.get("/{webhook_id}/deliveries")
def webhook_deliveries(webhook_id: int, admin: AdminDep, session: SessionDep) -> list[DeliveryRead]:
    """The delivery log: every alert sent to this partner, attempts, last status and error."""
    service.get_webhook(session, webhook_id=webhook_id)
    return [DeliveryRead.model_validate(d) for d in service.deliveries_of(session, webhook_id=webhook_id)]

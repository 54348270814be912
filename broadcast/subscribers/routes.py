"""Subscriber API: register, list, read, change and stop subscribers."""

from __future__ import annotations

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from broadcast.api.deps import AuthorDep, SessionDep, SettingsDep
from broadcast.subscribers import consent, service
from broadcast.subscribers.schemas import (
    ConsentPending,
    SubscriberCreate,
    SubscriberPage,
    SubscriberRead,
    SubscriberUpdate,
)

router = APIRouter(prefix="/api/v1/subscribers", tags=["subscribers"])
CODE_PATTERN = r"^\d{2}(\.\d{2}(\.\d{2}(\.\d{4})?)?)?$"


@router.post("", status_code=202)
def create(body: SubscriberCreate, user: AuthorDep, session: SessionDep, settings: SettingsDep) -> ConsentPending:
    """Ask a number's owner by SMS to confirm a registration inside the caller's jurisdiction (double opt-in):
    their YA reply creates or moves the subscription. The answer is the same for every number."""
    answer = consent.request_subscription(
        session, actor=user, fields=body.model_dump(), allow_foreign=settings.subscriber_foreign_numbers
    )
    session.commit()
    return _pending(answer)


def _pending(answer: consent.ConsentAnswer) -> ConsentPending:
    """Word the uniform answer (the confirmation SMS, if one is due, goes after the route: ConsentRequested; if
    the broker refuses it the beat sweep sends it, and the answer does not differ)."""
    return ConsentPending(message=consent.PENDING_MESSAGE, expires_at=answer.expires_at)


@router.get("")
def list_subscribers(
    user: AuthorDep,
    session: SessionDep,
    code: str | None = Query(default=None, pattern=CODE_PATTERN),
    active: bool | None = None,
    limit: int = Query(default=50, ge=1, le=500),
    offset: int = Query(default=0, ge=0),
) -> SubscriberPage:
    """Subscribers registered in or under `code` (default: the caller's jurisdiction), by id, one page at a time.

    Raises: SubscriberOutsideJurisdiction (a code outside the caller's jurisdiction).
    """
    code = service.scope_to_jurisdiction(user, code)
    items, total = service.list_subscribers(session, code=code, active=active, limit=limit, offset=offset)
    return SubscriberPage(
        total=total, limit=limit, offset=offset, items=[SubscriberRead.model_validate(s) for s in items]
    )


@router.get("/{subscriber_id}")
def get_one(subscriber_id: int, user: AuthorDep, session: SessionDep) -> SubscriberRead:
    """One subscriber, inside the caller's jurisdiction."""
    sub = service.get_subscriber(session, subscriber_id=subscriber_id)
    service.check_jurisdiction(user, sub, read=True)
    return SubscriberRead.model_validate(sub)


@router.patch(
    "/{subscriber_id}",
    response_model=SubscriberRead,
    responses={202: {"model": ConsentPending, "description": "A new number: its owner is asked to confirm"}},
)
def patch(
    subscriber_id: int, body: SubscriberUpdate, user: AuthorDep, session: SessionDep, settings: SettingsDep
) -> SubscriberRead | JSONResponse:
    """Change a subscriber's language, channels, X handle or place (200). A change of number is asked of the new
    number's owner first (202, the same answer for every number), with the other changes applied on their YA."""
    nullable = {"x_handle", "admin_code", "lat", "lon"}
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None or k in nullable}
    result = consent.change_subscriber(
        session,
        subscriber_id=subscriber_id,
        actor=user,
        changes=changes,
        allow_foreign=settings.subscriber_foreign_numbers,
    )
    session.commit()
    if isinstance(result, consent.ConsentAnswer):
        return JSONResponse(_pending(result).model_dump(mode="json"), status_code=202)
    return SubscriberRead.model_validate(result)


@router.post("/{subscriber_id}/stop")
def stop(subscriber_id: int, user: AuthorDep, session: SessionDep) -> SubscriberRead:
    """Stop every alert to this subscriber."""
    sub = service.stop_by_staff(session, subscriber_id=subscriber_id, actor=user)
    session.commit()
    return SubscriberRead.model_validate(sub)

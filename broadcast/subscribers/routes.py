"""Subscriber API: register, list, read, change and stop subscribers."""

from __future__ import annotations

from fastapi import APIRouter, Query

from broadcast.api.deps import AuthorDep, SessionDep, SettingsDep
from broadcast.subscribers import service
from broadcast.subscribers.schemas import SubscriberCreate, SubscriberPage, SubscriberRead, SubscriberUpdate

router = APIRouter(prefix="/api/v1/subscribers", tags=["subscribers"])
CODE_PATTERN = r"^\d{2}(\.\d{2}(\.\d{2}(\.\d{4})?)?)?$"


@router.post("", status_code=201)
def create(body: SubscriberCreate, user: AuthorDep, session: SessionDep, settings: SettingsDep) -> SubscriberRead:
    """Register a subscriber inside the caller's jurisdiction."""
    sub = service.create_subscriber(
        session, actor=user, fields=body.model_dump(), allow_foreign=settings.subscriber_foreign_numbers
    )
    session.commit()
    return SubscriberRead.model_validate(sub)


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


@router.patch("/{subscriber_id}")
def patch(
    subscriber_id: int, body: SubscriberUpdate, user: AuthorDep, session: SessionDep, settings: SettingsDep
) -> SubscriberRead:
    """Change a subscriber's language, channels, X handle or place."""
    nullable = {"x_handle", "admin_code", "lat", "lon"}
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None or k in nullable}
    sub = service.update_subscriber(
        session,
        subscriber_id=subscriber_id,
        actor=user,
        changes=changes,
        allow_foreign=settings.subscriber_foreign_numbers,
    )
    session.commit()
    return SubscriberRead.model_validate(sub)


@router.post("/{subscriber_id}/stop")
def stop(subscriber_id: int, user: AuthorDep, session: SessionDep) -> SubscriberRead:
    """Stop every alert to this subscriber."""
    sub = service.stop_by_staff(session, subscriber_id=subscriber_id, actor=user)
    session.commit()
    return SubscriberRead.model_validate(sub)

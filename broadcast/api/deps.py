"""Request dependencies: settings, a database session, and who is asking."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from broadcast import events
from broadcast.db import get_engine, session_factory
from broadcast.errors import Forbidden, Unauthorized
from broadcast.settings import Settings, get_settings
from broadcast.users.models import Role, User
from broadcast.users.security import TokenError, read_token

SESSION_COOKIE = "broadcast_session"
CSRF_COOKIE = "broadcast_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_session(request: Request, settings: SettingsDep) -> Iterator[Session]:
    """One session per request; entrypoints commit, anything uncommitted is rolled back, and the events of what
    committed go to the broker once the route is done (`send_events`)."""
    session = session_factory(get_engine(settings.resolved_database_url))()
    try:
        yield session
    finally:
        try:
            send_events(request, session)
        finally:
            session.close()


def send_events(request: Request, session: Session) -> list[events.Sent]:
    """Send the events committed in `session` (broadcast.events) through the app's Celery app; a route that
    answers with the outcome calls this itself after its commit, the session dependency sends the rest."""
    return events.send_committed(session, app=request.app.state.celery)


SessionDep = Annotated[Session, Depends(get_session)]


def _token_from(request: Request) -> tuple[str | None, bool]:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip(), False
    cookie = request.cookies.get(SESSION_COOKIE)
    return (cookie, True) if cookie else (None, False)


def find_current_user(
    request: Request, session: Session, settings: Settings, *, form_csrf: str | None = None
) -> User | None:
    """The signed-in user, None when nobody is signed in. An HTML form passes its CSRF field as `form_csrf`
    (checked instead of the header).

    Raises: Unauthorized (expired or forged token, disabled user),
    Forbidden (cookie write without CSRF token).
    """
    token, from_cookie = _token_from(request)
    if not token:
        return None
    try:
        user_id, version = read_token(
            settings.secret_key.get_secret_value(), token, max_age_s=settings.session_ttl_minutes * 60
        )
    except TokenError as exc:
        if exc.expired:
            raise Unauthorized(
                "Sesi kedaluwarsa, silakan masuk lagi / session expired, sign in again",
                code="session-expired",
            ) from exc
        raise Unauthorized("Token tidak valid / invalid token", code="invalid-token") from exc
    user = session.get(User, user_id)
    if user is None or not user.is_active or user.token_version != version:
        raise Unauthorized("Sesi tidak berlaku lagi / session revoked", code="session-revoked")
    if from_cookie and request.method not in SAFE_METHODS:
        sent = form_csrf if form_csrf is not None else request.headers.get(CSRF_HEADER, "")
        expected = request.cookies.get(CSRF_COOKIE, "")
        if not expected or not hmac.compare_digest(sent, expected):
            raise Forbidden("Token CSRF tidak cocok / CSRF token missing or wrong", code="csrf")
    return user


def current_user(request: Request, session: SessionDep, settings: SettingsDep) -> User:
    """The signed-in user.

    Raises: Unauthorized.
    """
    user = find_current_user(request, session, settings)
    if user is None:
        raise Unauthorized("Perlu masuk / authentication required", code="not-authenticated")
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def require_roles(*roles: Role) -> Callable[[User], User]:
    """A dependency that lets only these roles through."""
    allowed = frozenset(r.value for r in roles)

    def check(user: CurrentUser) -> User:
        if user.role not in allowed:
            raise Forbidden(
                f"Peran '{user.role}' tidak boleh melakukan ini / role '{user.role}' may not do this "
                f"(needs: {', '.join(sorted(allowed))})",
                code="role-not-allowed",
            )
        return user

    check.allowed_roles = allowed  # type: ignore[attr-defined]  # read by broadcast.api.access
    return check


def require_roles_briefly(*roles: Role) -> Callable[[Request, Settings], User]:
    """Like `require_roles`, for long responses (event streams): the session it reads the user with is closed
    before the response starts, so an open stream holds no database connection. The user comes back detached
    (its columns loaded, nothing lazy).
    """
    check = require_roles(*roles)

    def briefly(request: Request, settings: SettingsDep) -> User:
        with session_factory(get_engine(settings.resolved_database_url))() as session:
            user = current_user(request, session, settings)
            check(user)
            session.expunge(user)
        return user

    briefly.allowed_roles = check.allowed_roles  # type: ignore[attr-defined]
    return briefly


AuthorDep = Annotated[User, Depends(require_roles(Role.OPERATOR, Role.APPROVER, Role.ADMIN))]
ApproverDep = Annotated[User, Depends(require_roles(Role.APPROVER, Role.ADMIN))]
AdminDep = Annotated[User, Depends(require_roles(Role.ADMIN))]
StaffDep = Annotated[User, Depends(require_roles(Role.OPERATOR, Role.APPROVER, Role.ADMIN, Role.ANALYST))]
# Staff, for event streams: no session held while the stream is open.
StreamStaffDep = Annotated[User, Depends(require_roles_briefly(Role.OPERATOR, Role.APPROVER, Role.ADMIN, Role.ANALYST))]

"""Login and user administration."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request

from broadcast.api.deps import AdminDep, CurrentUser, SessionDep, SettingsDep
from broadcast.api.security import LoginThrottleDep, client_ip, sign_in
from broadcast.db import utcnow
from broadcast.users import service
from broadcast.users.schemas import LoginRequest, PasswordChange, TokenRead, UserCreate, UserRead, UserUpdate
from broadcast.users.security import issue_token

router = APIRouter(prefix="/api/v1", tags=["users"])


@router.post("/auth/login", responses={429: {"description": "too many failed sign-ins (Retry-After)"}})
async def login(
    body: LoginRequest, request: Request, session: SessionDep, settings: SettingsDep, throttle: LoginThrottleDep
) -> TokenRead:
    """Exchange a username and password for a bearer token (throttled per account and per address)."""
    user = await sign_in(
        session, throttle, username=body.username, password=body.password, ip=client_ip(request, settings)
    )
    token = issue_token(settings.secret_key.get_secret_value(), user_id=user.id, token_version=user.token_version)
    return TokenRead(access_token=token, expires_at=utcnow() + timedelta(minutes=settings.session_ttl_minutes))


@router.post("/auth/logout", status_code=204)
def logout(user: CurrentUser, session: SessionDep) -> None:
    """Revoke every session of the signed-in user."""
    service.revoke_sessions(session, user=user, actor_id=user.id, reason="logout")
    session.commit()


@router.post("/auth/password", status_code=204)
def change_own_password(body: PasswordChange, user: CurrentUser, session: SessionDep) -> None:
    """Change your own password (the current one is required); every existing session, this one included, ends."""
    service.change_password(
        session, user=user, new_password=body.new_password, current_password=body.current_password, actor_id=user.id
    )
    session.commit()


@router.get("/auth/me")
def me(user: CurrentUser) -> UserRead:
    """Who the token belongs to."""
    return UserRead.model_validate(user)


@router.post("/users", status_code=201)
def create_user(body: UserCreate, admin: AdminDep, session: SessionDep) -> UserRead:
    """Add a user (admins only)."""
    user = service.create_user(
        session,
        username=body.username,
        full_name=body.full_name,
        password=body.password,
        role=body.role,
        jurisdiction=body.jurisdiction,
        actor_id=admin.id,
    )
    session.commit()
    return UserRead.model_validate(user)


@router.patch("/users/{user_id}")
def update_user(user_id: int, body: UserUpdate, admin: AdminDep, session: SessionDep) -> UserRead:
    """Change a user's role, jurisdiction, active flag or password (admins only); the user's sessions end."""
    fields = body.model_dump(exclude_unset=True)
    user = service.update_user(
        session,
        user_id=user_id,
        actor_id=admin.id,
        role=fields.get("role"),
        is_active=fields.get("is_active"),
        **({"jurisdiction": fields["jurisdiction"]} if "jurisdiction" in fields else {}),
    )
    if fields.get("password"):
        service.change_password(
            session, user=user, new_password=fields["password"], current_password=None, actor_id=admin.id
        )
    session.commit()
    return UserRead.model_validate(user)


@router.get("/users")
def list_users(admin: AdminDep, session: SessionDep) -> list[UserRead]:
    """Every user (admins only)."""
    return [UserRead.model_validate(u) for u in service.list_users(session)]

"""API shapes for users and login."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from broadcast.users.models import Role


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class TokenRead(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_at: datetime


class UserCreate(BaseModel):
    username: str = Field(min_length=3, max_length=64, pattern=r"^[a-z0-9_.-]+$")
    full_name: str = Field(min_length=1, max_length=200)
    # The policy (12+ characters, not common, not guessable) is broadcast.users.passwords, checked by the service.
    password: str = Field(min_length=1, max_length=256)
    role: Role
    jurisdiction: str | None = Field(default=None, max_length=13)


class PasswordChange(BaseModel):
    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=1, max_length=256)


class UserUpdate(BaseModel):
    """Fields an admin may change; any change ends the user's existing sessions."""

    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    jurisdiction: str | None = Field(default=None, max_length=13)
    is_active: bool | None = None
    password: str | None = Field(default=None, min_length=1, max_length=256)


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    full_name: str
    role: Role
    jurisdiction: str | None
    is_active: bool

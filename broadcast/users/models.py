"""Users, their role and their jurisdiction."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from broadcast.db import Base, utcnow


class Role(StrEnum):
    OPERATOR = "operator"
    APPROVER = "approver"
    ADMIN = "admin"
    ANALYST = "analyst"


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('operator','approver','admin','analyst')", name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    # Kemendagri code of a provinsi ("72") or kabupaten/kota ("72.71"); None means national.
    jurisdiction: Mapped[str | None] = mapped_column(String(13))
    is_active: Mapped[bool] = mapped_column(default=True)
    # Bumped to revoke every session token issued before.
    token_version: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

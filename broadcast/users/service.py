"""Create users and check who is asking."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from broadcast.audit import service as audit
from broadcast.errors import Conflict, Invalid, NotFound, Unauthorized
from broadcast.users.models import Role, User
from broadcast.users.passwords import check_password
from broadcast.users.security import hash_password, verify_password
from geo import gazetteer

# Verifying against a real hash keeps a wrong username as slow as a wrong password.
_DUMMY_HASH = hash_password("not-a-real-password")


def validate_jurisdiction(code: str | None) -> str | None:
    """A national (None), provinsi or kabupaten/kota code that exists in the gazetteer.

    Raises: Invalid.
    """
    if code in (None, "", "ID"):
        return None
    assert code is not None
    if not gazetteer.is_well_formed(code) or code.count(".") > 1:
        raise Invalid(
            f"Yurisdiksi '{code}' harus kode provinsi (PP) atau kabupaten/kota (PP.KK) / "
            "jurisdiction must be a provinsi (PP) or kabupaten/kota (PP.KK) code",
            code="invalid-jurisdiction",
        )
    if gazetteer.find_place(code) is None:
        raise Invalid(f"Kode wilayah '{code}' tidak dikenal / unknown area code", code="unknown-area-code")
    return code


def create_user(
    session: Session,
    *,
    username: str,
    full_name: str,
    password: str,
    role: Role,
    jurisdiction: str | None,
    actor_id: int | None,
) -> User:
    """Add a user with an argon2-hashed password that passes the password policy.

    Raises: Conflict (username taken), Invalid (jurisdiction), WeakPassword.
    """
    jurisdiction = validate_jurisdiction(jurisdiction)
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"Nama pengguna '{username}' sudah dipakai / username taken", code="username-taken")
    check_password(password, user_inputs=(username, full_name))
    user = User(
        username=username,
        full_name=full_name,
        password_hash=hash_password(password),
        role=role.value,
        jurisdiction=jurisdiction,
    )
    session.add(user)
    session.flush()
    audit.record(
        session,
        actor_id=actor_id,
        action="user.create",
        subject_type="user",
        subject_id=user.id,
        after={"username": username, "role": role.value, "jurisdiction": jurisdiction},
    )
    return user


def authenticate(session: Session, *, username: str, password: str) -> User:
    """The active user with these credentials.

    Raises: Unauthorized.
    """
    user = session.scalar(select(User).where(User.username == username))
    # Always one argon2 verification, whether the account exists, is disabled or not: the answer's timing
    # must not tell which usernames exist.
    matches = verify_password(user.password_hash if user is not None else _DUMMY_HASH, password)
    if user is None or not user.is_active or not matches:
        raise Unauthorized("Nama pengguna atau kata sandi salah / wrong username or password")
    return user


def revoke_sessions(session: Session, *, user: User, actor_id: int | None, reason: str) -> None:
    """End every session token issued to `user` so far (the token version moves on); audited."""
    user.token_version = (user.token_version or 0) + 1
    audit.record(
        session,
        actor_id=actor_id,
        action="user.logout" if reason == "logout" else "user.sessions_revoked",
        subject_type="user",
        subject_id=user.id,
        after={"reason": reason},
    )
    session.flush()


def change_password(
    session: Session, *, user: User, new_password: str, current_password: str | None, actor_id: int | None
) -> User:
    """Set a new password (policy-checked) and end every existing session of the user. `current_password` is
    required when users change their own password (None for an admin or the CLI).

    Raises: Unauthorized (current password wrong), WeakPassword.
    """
    if current_password is not None and not verify_password(user.password_hash, current_password):
        raise Unauthorized("Kata sandi saat ini salah / current password is wrong", code="wrong-password")
    check_password(new_password, user_inputs=(user.username, user.full_name))
    user.password_hash = hash_password(new_password)
    audit.record(session, actor_id=actor_id, action="user.password_change", subject_type="user", subject_id=user.id)
    revoke_sessions(session, user=user, actor_id=actor_id, reason="password change")
    return user


def update_user(
    session: Session,
    *,
    user_id: int,
    actor_id: int | None,
    role: Role | None = None,
    jurisdiction: str | object | None = ...,
    is_active: bool | None = None,
) -> User:
    """Change a user's role, jurisdiction or active flag; any change ends the user's existing sessions (a token
    must never carry powers its holder no longer has).

    Raises: NotFound, Invalid (jurisdiction).
    """
    user = get_user(session, user_id=user_id)
    before = {"role": user.role, "jurisdiction": user.jurisdiction, "is_active": user.is_active}
    if role is not None:
        user.role = role.value
    if jurisdiction is not ...:
        user.jurisdiction = validate_jurisdiction(jurisdiction)  # type: ignore[arg-type]
    if is_active is not None:
        user.is_active = is_active
    after = {"role": user.role, "jurisdiction": user.jurisdiction, "is_active": user.is_active}
    if after != before:
        audit.record(
            session,
            actor_id=actor_id,
            action="user.update",
            subject_type="user",
            subject_id=user.id,
            before=before,
            after=after,
        )
        revoke_sessions(session, user=user, actor_id=actor_id, reason="role change")
    return user


def get_user(session: Session, *, user_id: int) -> User:
    """The user with this id.

    Raises: NotFound.
    """
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("Pengguna tidak ditemukan / user not found")
    return user


def find_user_by_username(session: Session, *, username: str) -> User | None:
    """The user with this username, if any."""
    return session.scalar(select(User).where(User.username == username))


def list_users(session: Session) -> list[User]:
    """Every user, by username."""
    return list(session.scalars(select(User).order_by(User.username)))


SYSTEM_USERNAME = "sistem"


@dataclass(frozen=True, slots=True)
class SystemActor:
    """The system account acting with the jurisdiction configuration gives it (BROADCAST_SYSTEM_JURISDICTION)."""

    id: int
    username: str
    role: str
    jurisdiction: str | None


def system_actor(session: Session, *, jurisdiction: str | None) -> SystemActor:
    """The system account as an actor limited to `jurisdiction` (None: national): what imports act as when no
    person is named. Raises: Invalid (not a provinsi or kabupaten/kota code)."""
    user = system_user(session)
    return SystemActor(user.id, user.username, user.role, validate_jurisdiction(jurisdiction or None))


def system_user(session: Session) -> User:
    """The account that authors machine-made drafts (imports, BMKG): it can never sign in or approve."""
    user = find_user_by_username(session, username=SYSTEM_USERNAME)
    if user is None:
        import secrets

        user = User(
            username=SYSTEM_USERNAME,
            full_name="Impor otomatis / automatic import",
            password_hash=hash_password(secrets.token_urlsafe(32)),
            role=Role.OPERATOR.value,
            jurisdiction=None,
            is_active=False,
        )
        session.add(user)
        session.flush()
        audit.record(
            session,
            actor_id=None,
            action="user.create",
            subject_type="user",
            subject_id=user.id,
            after={"username": SYSTEM_USERNAME, "role": user.role, "system": True},
        )
    return user

"""Password hashing (argon2) and signed, expiring session tokens."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

_hasher = PasswordHasher()
_SALT = "broadcast.session"


def hash_password(password: str) -> str:
    """An argon2id hash of `password`."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when `password` matches; never raises for a wrong or malformed hash."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


class TokenError(Exception):
    def __init__(self, message: str, *, expired: bool) -> None:
        super().__init__(message)
        self.expired = expired


def issue_token(secret: str, *, user_id: int, token_version: int) -> str:
    """A signed token naming the user and the token generation it belongs to."""
    return URLSafeTimedSerializer(secret, salt=_SALT).dumps({"uid": user_id, "v": token_version})


def read_token(secret: str, token: str, *, max_age_s: int) -> tuple[int, int]:
    """The (user id, token version) inside a valid token.

    Raises: TokenError (expired or tampered).
    """
    try:
        data = URLSafeTimedSerializer(secret, salt=_SALT).loads(token, max_age=max_age_s)
    except SignatureExpired as exc:
        raise TokenError("session expired", expired=True) from exc
    except BadSignature as exc:
        raise TokenError("invalid token", expired=False) from exc
    if not isinstance(data, dict) or not isinstance(data.get("uid"), int):
        raise TokenError("invalid token", expired=False)
    return data["uid"], int(data.get("v", 0))

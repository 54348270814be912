"""Login throttling in Redis: failed sign-ins counted per account and per client address in fixed windows.

An account with too many failures in the window is refused (429, Retry-After) until the window ends, from any
address, which stops password guessing against one account; an address with too many failures is refused for
every account, which stops spraying one password over many. A successful sign-in clears its account's count.
If Redis cannot be reached the throttle lets sign-ins through and logs it: staff must be able to sign in to
send a warning during an outage, and argon2 still makes each guess slow.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from broadcast.errors import TooManyRequests

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ThrottleLimits:
    account_failures: int = 5
    ip_failures: int = 30
    window_s: int = 15 * 60


def _key(kind: str, value: str) -> str:
    # Hashed so the keys never hold a username or address in clear.
    return f"login-fail:{kind}:{hashlib.sha256(value.lower().encode()).hexdigest()[:32]}"


class LoginThrottle:
    """Counts failed sign-ins; `check` raises TooManyRequests while a limit is reached."""

    def __init__(self, client: Any, limits: ThrottleLimits | None = None) -> None:
        self.client = client
        self.limits = limits or ThrottleLimits()

    def check(self, *, username: str, ip: str) -> None:
        """Refuse a sign-in attempt while the account or the address is over its limit.

        Raises: TooManyRequests (with the seconds until the window ends).
        """
        try:
            pipe = self.client.pipeline()
            for key in (_key("user", username), _key("ip", ip)):
                pipe.get(key)
                pipe.ttl(key)
            user_n, user_ttl, ip_n, ip_ttl = pipe.execute()
        except Exception as exc:
            log.warning("login throttle unavailable (%s); not throttling", type(exc).__name__)
            return
        if int(user_n or 0) >= self.limits.account_failures:
            raise TooManyRequests(
                "Terlalu banyak percobaan masuk untuk akun ini; coba lagi nanti / too many failed sign-ins for this "
                "account, try again later",
                retry_after_s=max(int(user_ttl or 0), 1),
                code="login-throttled",
            )
        if int(ip_n or 0) >= self.limits.ip_failures:
            raise TooManyRequests(
                "Terlalu banyak percobaan masuk dari alamat ini; coba lagi nanti / too many failed sign-ins from "
                "this address, try again later",
                retry_after_s=max(int(ip_ttl or 0), 1),
                code="login-throttled",
            )

    def failed(self, *, username: str, ip: str) -> list[str]:
        """Count one failed sign-in against the account and the address; the limits ("account", "ip") this
        failure just reached."""
        try:
            pipe = self.client.pipeline()
            for key in (_key("user", username), _key("ip", ip)):
                pipe.incr(key)
                pipe.expire(key, self.limits.window_s, nx=True)
            user_n, _, ip_n, _ = pipe.execute()
        except Exception as exc:
            log.warning("login throttle unavailable (%s); failure not counted", type(exc).__name__)
            return []
        reached = []
        if int(user_n) == self.limits.account_failures:
            reached.append("account")
        if int(ip_n) == self.limits.ip_failures:
            reached.append("ip")
        return reached

    def succeeded(self, *, username: str) -> None:
        """Clear the account's failures after a correct sign-in."""
        try:
            self.client.delete(_key("user", username))
        except Exception as exc:
            log.warning("login throttle unavailable (%s)", type(exc).__name__)

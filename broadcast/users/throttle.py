"""Sign-in throttling on the shared limiter (broadcast.limits): every attempt is counted before its password is
checked, so parallel guesses cannot slip past the limit.

- One account from one client address: after `pair_failures` attempts that did not succeed, that address is
  refused for that account (429, Retry-After) until the window ends. The right password from an address that has
  not been failing still works: a stranger cannot lock a staff member out during an emergency.
- One address over every account: after `ip_failures` attempts it is refused for all accounts (password spraying).
- One account from every address: after `account_slow_after` attempts each further attempt waits a growing delay
  (doubling, at most `max_delay_s`) before it is checked, so guessing from many addresses is slow, never a lockout.

The store is Redis; if it cannot be reached sign-in is refused (503): a throttle that cannot count must not let
unlimited guesses through.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from broadcast import limits
from broadcast.errors import TooManyRequests, Unavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ThrottleLimits:
    pair_failures: int = 5
    ip_failures: int = 30
    account_slow_after: int = 10
    max_delay_s: float = 16.0
    window_s: int = 15 * 60


@dataclass
class Attempt:
    """One sign-in attempt, already counted; `delay_s` is how long to wait before checking its password."""

    username: str
    ip: str
    delay_s: float = 0.0
    counts: dict[str, limits.Count] = field(default_factory=dict)
    windows: dict[str, limits.Window] = field(default_factory=dict)


class LoginThrottle:
    """Counts sign-in attempts per (account, address), per address and per account."""

    def __init__(self, counters: limits.Counters, limits_: ThrottleLimits | None = None) -> None:
        self.counters = counters
        self.limits = limits_ or ThrottleLimits()

    def delay_for(self, account_n: int) -> float:
        """Seconds an attempt waits when it is the `account_n`-th on its account in the window."""
        over = account_n - self.limits.account_slow_after
        if over <= 0:
            return 0.0
        return float(min(0.25 * 2 ** min(over, 30), self.limits.max_delay_s))

    def begin(self, *, username: str, ip: str) -> Attempt:
        """Count an attempt and refuse it when its (account, address) or its address is over the limit.

        Raises: TooManyRequests (Retry-After until the window ends), Unavailable (the store is down).
        """
        w = self.limits.window_s
        attempt = Attempt(username=username, ip=ip)
        attempt.windows = {
            "pair": limits.Window(limits.key("login", "pair", username, ip), w),
            "ip": limits.Window(limits.key("login", "ip", ip), w),
            "account": limits.Window(limits.key("login", "account", username), w),
        }
        try:
            pair, by_ip = self.counters.hit([attempt.windows["pair"], attempt.windows["ip"]])
            attempt.counts.update(pair=pair, ip=by_ip)
            if pair.n > self.limits.pair_failures:
                raise TooManyRequests(
                    "Terlalu banyak percobaan masuk untuk akun ini dari alamat ini; coba lagi nanti / too many failed "
                    "sign-ins for this account from this address, try again later",
                    retry_after_s=pair.retry_after_s,
                    code="login-throttled",
                )
            if by_ip.n > self.limits.ip_failures:
                raise TooManyRequests(
                    "Terlalu banyak percobaan masuk dari alamat ini; coba lagi nanti / too many failed sign-ins from "
                    "this address, try again later",
                    retry_after_s=by_ip.retry_after_s,
                    code="login-throttled",
                )
            (account,) = self.counters.hit([attempt.windows["account"]])
        except limits.StoreUnavailable as exc:
            log.error("login throttle store unavailable (%s); sign-in refused", exc)
            raise Unavailable(
                "Masuk sementara tidak tersedia (penghitung percobaan tidak terjangkau); coba lagi sebentar / sign-in "
                "is unavailable for now (the attempt counter cannot be reached), try again shortly",
                code="login-throttle-unavailable",
            ) from exc
        attempt.counts["account"] = account
        attempt.delay_s = self.delay_for(account.n)
        return attempt

    def failed(self, attempt: Attempt) -> list[str]:
        """The limits this failed attempt just reached ("account+address", "address", "account slowed")."""
        reached = []
        if attempt.counts["pair"].n == self.limits.pair_failures:
            reached.append("account+address")
        if attempt.counts["ip"].n == self.limits.ip_failures:
            reached.append("address")
        if "account" in attempt.counts and attempt.counts["account"].n == self.limits.account_slow_after + 1:
            reached.append("account slowed")
        return reached

    def succeeded(self, attempt: Attempt) -> None:
        """A right password: this address starts afresh for this account, and the attempt no longer counts
        against the address or the account."""
        pair = attempt.windows["pair"]
        undo = [
            limits.Window(pair.key, pair.window_s, cost=attempt.counts["pair"].n),
            attempt.windows["ip"],
            attempt.windows["account"],
        ]
        try:
            self.counters.undo(undo)
        except limits.StoreUnavailable as exc:
            log.warning("login throttle store unavailable (%s); success not recorded", exc)

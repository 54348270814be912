"""Which agency account posts an alert: the most specific jurisdiction that covers the whole area.

Shared by every social adapter (X now; Telegram or Facebook pages later), so it knows nothing of X.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar


class HasJurisdiction(Protocol):
    """An account that posts for one Kemendagri code ("" = the whole country)."""

    @property
    def code(self) -> str: ...


AccountT = TypeVar("AccountT", bound=HasJurisdiction)


def code_contains(outer: str, inner: str) -> bool:
    """True when area `inner` lies in `outer`, comparing whole dotted segments ("72" holds "72.71.01")."""
    if not outer:
        return True
    a, b = outer.split("."), inner.split(".")
    return len(a) <= len(b) and b[: len(a)] == a


def choose_account(accounts: Sequence[AccountT], area_codes: Sequence[str]) -> AccountT | None:
    """The most specific account whose code contains every area code, or None when none covers them all.

    With no area codes only a national account (code "") or a lone account qualifies: guessing a
    regional account for an area we cannot place would post in the wrong agency's name.
    """
    if not area_codes:
        national = [a for a in accounts if a.code == ""]
        if national:
            return national[0]
        return accounts[0] if len(accounts) == 1 else None
    covering = [a for a in accounts if all(code_contains(a.code, c) for c in area_codes)]
    if not covering:
        return None
    # Deeper codes are more specific; ties keep configuration order so the choice is stable.
    return max(covering, key=lambda a: len(a.code.split(".")) if a.code else 0)

"""Password policy, checked wherever a password is set (user creation, password change, demo accounts).

At least 12 characters, not one of the 30,000 most common passwords shipped with zxcvbn (MIT, Dropbox) and not
easily guessed by zxcvbn's estimate (score 3 of 4 at least: no keyboard walks, repeats, dates or the user's own
name), so `aaaaaaaaaaaa` and `password1234` are refused.
"""

from __future__ import annotations

from functools import lru_cache

from broadcast.errors import Invalid

MIN_LENGTH = 12
MIN_SCORE = 3


class WeakPassword(Invalid):
    code = "weak-password"


@lru_cache(maxsize=1)
def _common() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def check_password(password: str, *, user_inputs: tuple[str, ...] = ()) -> None:
    """Refuse a password that is short, common or easily guessed.

    Raises: WeakPassword.
    """
    if len(password) < MIN_LENGTH:
        raise WeakPassword(
            f"Kata sandi minimal {MIN_LENGTH} karakter / password must have at least {MIN_LENGTH} characters"
        )
    if password.lower() in _common():
        raise WeakPassword("Kata sandi ini termasuk yang paling umum / this password is one of the most common")
    from zxcvbn import zxcvbn

    if zxcvbn(password[:100], user_inputs=[u for u in user_inputs if u])["score"] < MIN_SCORE:
        raise WeakPassword(
            "Kata sandi terlalu mudah ditebak (pola, pengulangan atau nama) / password too easy to guess "
            "(a pattern, repetition or a name)"
        )

"""Short verification codes for alerts: Crockford base32, read aloud or typed from a phone without confusion."""

from __future__ import annotations

import re
import secrets

# Crockford base32: no I, L, O or U, so a code read from a phone screen is never ambiguous.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 6
# What people type instead: O for zero, I/L for one; hyphens and spaces are ignored.
_CONFUSABLE = str.maketrans({"O": "0", "I": "1", "L": "1"})
_SHAPE = re.compile(rf"^[{ALPHABET}]{{{LENGTH}}}$")
# A code inside a forwarded message: "Kode: 7KQ2MX", "kode 7kq2mx", "Code: 7KQ2MX".
IN_TEXT = re.compile(rf"\b(?:kode|code)\s*[:.]?\s*([0-9A-Za-z]{{{LENGTH}}})\b", re.IGNORECASE)


def new_code() -> str:
    """A random code of LENGTH characters from the Crockford alphabet (about 10^9 possibilities)."""
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def normalise(text: str) -> str | None:
    """The canonical form of a code a person typed ("7kq2-mx", "7KQ2MO" → "7KQ2M0"), or None if it cannot be one."""
    cleaned = re.sub(r"[\s\-.]", "", text or "").upper().translate(_CONFUSABLE)
    return cleaned if _SHAPE.match(cleaned) else None


def find_in_text(text: str) -> str | None:
    """The code a pasted message carries after "Kode:"/"Code:", normalised, or None."""
    match = IN_TEXT.search(text or "")
    return normalise(match.group(1)) if match else None

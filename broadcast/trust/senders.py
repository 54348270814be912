"""CAP senders compared by one exact form: NFKC, case-folded, printable ASCII only.

A sender decides whose certificate a document must be signed with, so two spellings that a person reads as the same
sender must be the same key, and spellings that only look alike must never be. Invisible characters (zero-width
spaces, joiners, direction marks) and characters outside ASCII after NFKC (Cyrillic `а` for Latin `a`, ...) are
refused rather than guessed at; an internationalised domain is written in its `xn--` form.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from pathlib import Path

from broadcast.errors import Invalid

# Unicode categories that render as nothing (or as blank) and so can hide inside a sender.
_INVISIBLE = frozenset({"Cf", "Cc", "Cs", "Co", "Cn", "Zs", "Zl", "Zp", "Mn", "Me"})


class SenderRefused(Invalid):
    """A CAP sender with invisible or look-alike characters."""

    code = "cap-sender-refused"


def sender_key(sender: str) -> str:
    """The one form senders are compared in: NFKC, case-folded, stripped of surrounding whitespace.

    Raises: SenderRefused when the sender holds invisible characters or anything but printable ASCII after NFKC.
    """
    text = sender.strip()
    for ch in text:
        if unicodedata.category(ch) in _INVISIBLE:
            raise SenderRefused(
                f"pengirim memuat karakter tak terlihat (U+{ord(ch):04X}) / sender contains an invisible character"
            )
    folded = unicodedata.normalize("NFKC", text).casefold()
    for ch in folded:
        if not ("\x21" <= ch <= "\x7e"):
            raise SenderRefused(
                f"pengirim memuat karakter non-ASCII yang bisa menyerupai huruf lain (U+{ord(ch):04X}) / sender "
                "contains a non-ASCII (possibly look-alike) character; use the xn-- form of a domain"
            )
    return folded


def trusted_certs(mapping: Mapping[str, Path]) -> dict[str, bytes]:
    """The configured sender → certificate files, read once and keyed by `sender_key` (a missing file or a sender
    with invisible or look-alike characters fails at startup, not on import)."""
    return {sender_key(sender): Path(path).read_bytes() for sender, path in mapping.items()}

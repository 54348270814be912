"""SMS segment arithmetic: GSM-7 vs UCS-2 detection, segment counts and the safe GSM-7 normalisation.

The counting rules follow REFERENCE §2 (Twilio's message-segment calculator): GSM-7 160/153 septets,
UCS-2 70/67 UTF-16 units, extension characters cost two septets, and neither an escape pair nor a
grapheme cluster is ever split across segments.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import regex

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[]~|€")

GSM7_SINGLE, GSM7_MULTI = 160, 153
UCS2_SINGLE, UCS2_MULTI = 70, 67

# A subset of Twilio's Smart Encoding map (TwilioDevEd/message-segment-calculator SmartEncodingMap.ts):
# only typographic punctuation and spaces, whose GSM-7 stand-in reads the same to a citizen. Left out on
# purpose: combining marks (they would change letters), the swapped ‹ › entries and control characters.
SMART_GSM7: dict[str, str] = {
    "\u00ab": '"',  # «
    "\u00bb": '"',  # »
    "\u201c": '"',  # “
    "\u201d": '"',  # ”
    "\u201e": '"',  # „
    "\u201f": '"',  # ‟
    "\u2033": '"',  # ″
    "\uff02": '"',  # fullwidth "
    "\u2018": "'",  # ‘
    "\u2019": "'",  # ’
    "\u201a": ",",  # ‚ low single quote reads as a comma
    "\u201b": "'",  # ‛
    "\u2032": "'",  # ′
    "\u02bc": "'",  # ʼ modifier apostrophe
    "\u00b4": "'",  # ´
    "`": "'",
    "\uff07": "'",  # fullwidth '
    "\u2010": "-",  # hyphen
    "\u2011": "-",  # non-breaking hyphen
    "\u2012": "-",  # figure dash
    "\u2013": "-",  # en dash
    "\u2014": "-",  # em dash
    "\u2015": "-",  # horizontal bar
    "\u2212": "-",  # minus sign
    "\u2022": "-",  # bullet
    "\uff0d": "-",  # fullwidth -
    "\u2026": "...",  # ellipsis
    "\u00a0": " ",  # NBSP
    "\u2000": " ",
    "\u2001": " ",
    "\u2002": " ",
    "\u2003": " ",
    "\u2004": " ",
    "\u2005": " ",
    "\u2006": " ",
    "\u2007": " ",
    "\u2008": " ",
    "\u2009": " ",
    "\u200a": " ",
    "\u202f": " ",  # narrow NBSP
    "\u205f": " ",
    "\u3000": " ",
    "\u2028": " ",  # line separator
    "\u2029": " ",  # paragraph separator
    "\t": " ",
    "\u200b": "",  # zero-width space
    "\u2060": "",  # word joiner
    "\ufeff": "",  # BOM / zero-width no-break space
    "\u00f7": "/",  # ÷
    "\u2044": "/",  # fraction slash
    "\u3001": ",",  # ideographic comma
    "\u3002": ".",  # ideographic full stop
    "\uff0c": ",",  # fullwidth comma
    "\uff0e": ".",  # fullwidth full stop
    "\uff1a": ":",  # fullwidth colon
    "\uff1b": ";",  # fullwidth semicolon
    "\uff01": "!",  # fullwidth !
    "\uff1f": "?",  # fullwidth ?
    "\uff08": "(",  # fullwidth (
    "\uff09": ")",  # fullwidth )
}
_SMART_TABLE = str.maketrans(SMART_GSM7)


class Encoding(StrEnum):
    GSM7 = "GSM-7"
    UCS2 = "UCS-2"


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """How a body travels: its encoding, segment count, cost in units and the per-segment limit."""

    encoding: Encoding
    segments: int
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    limit: int  # units one segment holds: 160/70 for a single SMS, 153/67 once concatenated
    characters: int  # user-perceived characters (grapheme clusters)


def is_gsm7(text: str) -> bool:
    """True when every character of `text` exists in the GSM 03.38 basic or extension table."""
    return all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text)


def normalise_gsm7(text: str) -> str:
    """`text` with typographic quotes, dashes, ellipsis and odd spaces mapped to GSM-7, when that makes it
    all GSM-7; otherwise `text` unchanged (it is UCS-2 anyway, and the originals read better)."""
    if is_gsm7(text):
        return text
    mapped = text.translate(_SMART_TABLE)
    return mapped if is_gsm7(mapped) else text


def _atoms(text: str, gsm: bool) -> list[str]:
    if gsm:
        return list(text)
    # A grapheme cluster travels whole; CRLF is the one cluster phones accept split.
    return [a for g in regex.findall(r"\X", text) for a in (["\r", "\n"] if g == "\r\n" else [g])]


def sms_segments(text: str) -> SegmentInfo:
    """Encoding, segments, units and per-segment limit of `text` exactly as sent (no normalisation)."""
    gsm = is_gsm7(text)
    atoms = _atoms(text, gsm)
    if gsm:
        units = [2 if a in GSM7_EXTENSION else 1 for a in atoms]
        single, multi, encoding = GSM7_SINGLE, GSM7_MULTI, Encoding.GSM7
    else:
        units = [len(a.encode("utf-16-le")) // 2 for a in atoms]
        single, multi, encoding = UCS2_SINGLE, UCS2_MULTI, Encoding.UCS2
    total = sum(units)
    characters = len(regex.findall(r"\X", text))
    if total <= single:
        return SegmentInfo(encoding, int(bool(text)), total, single, characters)
    segments, free = 1, multi
    for u in units:
        if u > free:
            segments, free = segments + 1, multi
        free -= u
    return SegmentInfo(encoding, segments, total, multi, characters)

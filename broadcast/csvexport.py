"""CSV for spreadsheets: every CSV the service hands out is written through here.

A cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is read as a formula by Excel, LibreOffice
and Google Sheets (CSV injection, OWASP). Text cells that start so get a leading apostrophe, which spreadsheets show
as plain text; numbers are written as numbers (a negative latitude stays a number).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """The value as a CSV cell that no spreadsheet runs as a formula (None → empty)."""
    if value is None:
        return ""
    if isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def to_csv(header: Iterable[str], rows: Iterable[Iterable[Any]], *, lineterminator: str = "\r\n") -> str:
    """A header and rows as CSV text, every cell through `safe_cell`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=lineterminator)
    writer.writerow([safe_cell(h) for h in header])
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])
    return out.getvalue()

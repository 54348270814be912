"""What every HTML page template is given besides its own data: one place for the page helpers.

Used by the web routes and by the console's preview of a public page, so the preview is the page.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from channels.base import STATUS_MARKS
from templates import i18n

MARKS = {status: f"{m['id']} / {m['en']}" if m["id"] != m["en"] else m["id"] for status, m in STATUS_MARKS.items()}


def page_helpers(lang: str) -> dict[str, Any]:
    """The helpers page templates call, in the page's language: t, when, when_short, label, info_of, marks."""

    def t(indonesian: str, english: str) -> str:
        return english if lang == "en" else indonesian

    def when(moment: datetime | None, alert: Any = None, code: str | None = None) -> str:
        """A time in the alert's local zone(s), else the zone of `code` (WIB when neither)."""
        zones = alert_zones(alert) if alert is not None else [i18n.zone_of(code)]
        return i18n.format_time(moment, zones, lang)

    def when_short(moment: datetime | None, code: str | None = None) -> str:
        """A compact time for tables ("7 Des 20.52 WITA") in the zone of `code`."""
        return i18n.format_short(moment, i18n.zone_of(code), lang)

    def label(kind: str, value: str | None) -> str:
        return i18n.label(kind, value, lang)

    def info_of(alert: Any) -> Any:
        """The alert's info block in the page's language (the first block when there is none)."""
        return next((i for i in alert.infos if (i.language or "").startswith(lang)), alert.infos[0])

    helpers: dict[str, Callable[..., Any] | dict[str, str]] = {
        "t": t,
        "when": when,
        "when_short": when_short,
        "label": label,
        "info_of": info_of,
        "marks": MARKS,
    }
    return helpers


def alert_zones(alert: Any) -> list[i18n.Zone]:
    """The time zones of an alert's area: from its Kemendagri codes, else from where its drawn parts lie."""
    codes = sorted({c for area in alert.areas for c in area.geocodes})
    if not codes:
        codes = [c for c in (_province_at(area) for area in alert.areas) if c]
    return i18n.zones_of(codes)


def _province_at(area: Any) -> str | None:
    from geo import boundaries

    point: tuple[float, float] | None = None
    if area.polygons and area.polygons[0]:
        lat, lon = area.polygons[0][0][:2]
        point = (lon, lat)
    elif area.circles:
        point = (area.circles[0]["lon"], area.circles[0]["lat"])
    if point is None:
        return None
    code = boundaries.codes_at(float(point[0]), float(point[1]), "provinsi")
    return str(code) if code else None

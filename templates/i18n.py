"""How people read times and CAP words: local time (WIB/WITA/WIT) and Indonesian labels, English second.

One place for every surface people read (pages, /cek, console, SMS, posts). CAP documents keep ISO 8601;
this module is only for text a person reads. Pure: no settings, no database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class Zone:
    """An Indonesian time zone: the abbreviation people use and the IANA zone behind it."""

    abbr: str
    tz: ZoneInfo


WIB = Zone("WIB", ZoneInfo("Asia/Jakarta"))  # UTC+7: Sumatra, Java, West and Central Kalimantan
WITA = Zone("WITA", ZoneInfo("Asia/Makassar"))  # UTC+8: Bali, Nusa Tenggara, South/East/North Kalimantan, Sulawesi
WIT = Zone("WIT", ZoneInfo("Asia/Jayapura"))  # UTC+9: Maluku and Papua

# Kemendagri province code (the first two digits of any code) -> zone; every other province is WIB.
_PROVINCE_ZONES: dict[str, Zone] = {
    **dict.fromkeys(("51", "52", "53", "63", "64", "65", "71", "72", "73", "74", "75", "76"), WITA),
    **dict.fromkeys(("81", "82", "91", "92", "93", "94", "95", "96"), WIT),
}


def zone_of(code: str | None) -> Zone:
    """The time zone of a Kemendagri code at any level ("72.71.02" -> WITA); WIB when unknown."""
    return _PROVINCE_ZONES.get((code or "")[:2], WIB)


def zones_of(codes: Iterable[str]) -> list[Zone]:
    """The distinct zones of `codes`, in order of first appearance; [WIB] when there are none."""
    found: list[Zone] = []
    for code in codes:
        zone = zone_of(code)
        if zone not in found:
            found.append(zone)
    return found or [WIB]


_DAYS_ID = ("Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu")
_MONTHS_ID = (
    "Januari",
    "Februari",
    "Maret",
    "April",
    "Mei",
    "Juni",
    "Juli",
    "Agustus",
    "September",
    "Oktober",
    "November",
    "Desember",
)
_DAYS_EN = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def format_time(when: datetime | None, zones: Zone | Iterable[Zone] = WIB, lang: str = "id") -> str:
    """A moment as people read it, in the first zone (others in brackets), e.g.

    "Senin, 7 Desember 2026 pukul 20.52 WITA" / "Mon 7 Dec 2026, 20:52 WITA";
    with two zones: "… pukul 20.52 WITA (19.52 WIB)". "—" for None. Naive datetimes are taken as UTC.
    """
    if when is None:
        return "—"
    zone_list = [zones] if isinstance(zones, Zone) else list(zones) or [WIB]
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo("UTC"))
    first = when.astimezone(zone_list[0].tz)
    sep = ":" if lang == "en" else "."
    others = [f"{when.astimezone(z.tz):%H}{sep}{when.astimezone(z.tz):%M} {z.abbr}" for z in zone_list[1:]]
    extra = f" ({', '.join(others)})" if others else ""
    clock = f"{first:%H}{sep}{first:%M} {zone_list[0].abbr}{extra}"
    if lang == "en":
        return f"{_DAYS_EN[first.weekday()]} {first.day} {_MONTHS_EN[first.month - 1]} {first.year}, {clock}"
    return f"{_DAYS_ID[first.weekday()]}, {first.day} {_MONTHS_ID[first.month - 1]} {first.year} pukul {clock}"


def format_short(when: datetime | None, zone: Zone = WIB, lang: str = "id") -> str:
    """A compact moment for tables: "7 Des 20.52 WITA" / "7 Dec 20:52 WITA"; "—" for None."""
    if when is None:
        return "—"
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo("UTC"))
    local = when.astimezone(zone.tz)
    if lang == "en":
        return f"{local.day} {_MONTHS_EN[local.month - 1]} {local:%H}:{local:%M} {zone.abbr}"
    return f"{local.day} {_MONTHS_ID[local.month - 1][:3]} {local:%H}.{local:%M} {zone.abbr}"


def format_date(when: datetime | None, zone: Zone = WIB, lang: str = "id") -> str:
    """A day as people read it: "7 Desember 2026" / "7 Dec 2026"; "—" for None."""
    if when is None:
        return "—"
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo("UTC"))
    local = when.astimezone(zone.tz)
    months = _MONTHS_EN if lang == "en" else _MONTHS_ID
    return f"{local.day} {months[local.month - 1]} {local.year}"


# CAP words and our alert states as people read them: (Indonesian, English).
LABELS: dict[str, dict[str, tuple[str, str]]] = {
    "severity": {
        "Extreme": ("Ekstrem", "Extreme"),
        "Severe": ("Parah", "Severe"),
        "Moderate": ("Sedang", "Moderate"),
        "Minor": ("Ringan", "Minor"),
        "Unknown": ("Tidak diketahui", "Unknown"),
    },
    "urgency": {
        "Immediate": ("Segera", "Immediate"),
        "Expected": ("Dalam waktu dekat", "Expected"),
        "Future": ("Akan datang", "Future"),
        "Past": ("Sudah lewat", "Past"),
        "Unknown": ("Tidak diketahui", "Unknown"),
    },
    "certainty": {
        "Observed": ("Teramati", "Observed"),
        "Likely": ("Kemungkinan besar", "Likely"),
        "Possible": ("Mungkin", "Possible"),
        "Unlikely": ("Kecil kemungkinan", "Unlikely"),
        "Unknown": ("Tidak diketahui", "Unknown"),
    },
    "state": {
        "draft": ("Draf", "Draft"),
        "submitted": ("Menunggu persetujuan", "Awaiting approval"),
        "rejected": ("Ditolak", "Rejected"),
        "approved": ("Disetujui", "Approved"),
        "published": ("Aktif", "Active"),
        "active": ("Aktif", "Active"),
        "superseded": ("Diperbarui", "Updated"),
        "updated": ("Diperbarui", "Updated"),
        "cancelled": ("Dibatalkan", "Cancelled"),
        "expired": ("Berakhir", "Expired"),
    },
    "msg_type": {
        "Alert": ("Peringatan", "Alert"),
        "Update": ("Pembaruan", "Update"),
        "Cancel": ("Pembatalan", "Cancel"),
        "Ack": ("Tanda terima", "Acknowledgement"),
        "Error": ("Koreksi", "Correction"),
    },
    "report_status": {
        "new": ("Baru", "New"),
        "verified": ("Terverifikasi", "Verified"),
        "actioned": ("Ditindaklanjuti", "Actioned"),
        "dismissed": ("Diabaikan", "Dismissed"),
    },
}


def label(kind: str, value: str | None, lang: str = "id") -> str:
    """The word people read for a CAP value or state (`kind` is a key of LABELS); the value itself if unknown."""
    if value is None:
        return "—"
    pair = LABELS.get(kind, {}).get(value)
    if pair is None:
        return value
    return pair[1] if lang == "en" else pair[0]

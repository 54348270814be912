"""Bulk subscriber import from CSV: every bad row reported by line number, all-or-nothing unless asked.

Columns (header row required; only `phone` is mandatory, order free, names case-insensitive):

- ``phone``: 08…, 62… or +62… (stored as E.164)
- ``language``: ``id`` (default) or ``en``
- ``admin_code``: Kemendagri code of a desa, kecamatan or kabupaten/kota (e.g. ``72.71.01.1004``)
- ``lat``, ``lon``: a point in decimal degrees (WGS 84); with no admin_code the code is located from it
- ``channels``: personal channels separated by ``;`` or ``|`` (``sms``, ``social``); default ``sms``
- ``x_handle``: X account without or with the ``@`` (needed for ``social``)

Each row needs a point or an admin_code. A phone already in the database is updated (a stopped subscriber
stays stopped); a phone repeated in the file is taken from its last row. A phone is the whole field, an
Indonesian mobile number (`subscriber_phone`). An import that writes is made by a named user, and every subscriber
it creates or changes gets its own audit entry (actor, before, after).
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from broadcast.audit import service as audit
from broadcast.db import utcnow
from broadcast.errors import BroadcastError, Invalid
from broadcast.subscribers.models import Subscriber
from broadcast.subscribers.service import LOCATE_LEVELS, SubscriberFields, check_fields, mask_phone
from geo import boundaries

COLUMNS = ("phone", "language", "admin_code", "lat", "lon", "channels", "x_handle")
WRITE_CHUNK = 5_000
TABLE: Table = Subscriber.__table__  # type: ignore[assignment]
Progress = Callable[[str, int, int], None]  # (phase, done, total)


class InvalidCsv(Invalid):
    code = "invalid-csv"


class ImportNeedsActor(Invalid):
    code = "import-needs-actor"


_STATE_COLUMNS = ("language", "admin_code", "lat", "lon", "channels", "x_handle", "active")


def _view(phone: str, state: dict[str, Any]) -> dict[str, Any]:
    """A subscriber as the audit log shows it (the same shape as the API's entries; the phone masked)."""
    return {
        "phone": mask_phone(phone),
        "language": state["language"],
        "admin_code": state["admin_code"],
        "point": None if state["lat"] is None else [state["lat"], state["lon"]],
        "channels": list(state["channels"] or []),
        "x_handle": state["x_handle"],
        "active": state["active"],
    }


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    reason: str


@dataclass
class ImportReport:
    """What an import found and did; `applied` is False when nothing was written."""

    rows: int = 0
    valid: int = 0
    inserted: int = 0
    updated: int = 0
    stopped_kept: int = 0
    errors: list[RowError] = field(default_factory=list)
    repeated: list[tuple[int, int]] = field(default_factory=list)  # (line, earlier line it replaces)
    applied: bool = False
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        """Rows handled per second of the whole import."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def read_csv(text: str) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) for each data row; the header is line 1.

    Raises: InvalidCsv when the header lacks `phone` or names unknown columns.
    """
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [(h or "").strip().lower() for h in reader.fieldnames or []]
    unknown = [h for h in header if h not in COLUMNS]
    if "phone" not in header or unknown:
        raise InvalidCsv(
            f"Kepala CSV harus memuat 'phone' dan hanya kolom {', '.join(COLUMNS)}; tidak dikenal: "
            f"{', '.join(unknown) or '-'} / the header must contain 'phone' and only {', '.join(COLUMNS)}; "
            f"unknown: {', '.join(unknown) or '-'}"
        )
    reader.fieldnames = header
    try:
        for row in reader:
            if None in row:  # DictReader files surplus values under the key None
                yield reader.line_num, {"__error__": "Kolom berlebih / more values than header columns"}
                continue
            yield reader.line_num, {k: (v or "").strip() for k, v in row.items()}
    except csv.Error as exc:  # a field beyond csv's size limit, a NUL byte, ...: the rest cannot be read
        raise InvalidCsv(
            f"CSV rusak di baris {reader.line_num} / malformed CSV at line {reader.line_num}: {str(exc)[:200]}"
        ) from exc


def _float(value: str, name: str) -> float | None:
    if value == "":
        return None
    try:
        return float(value)
    except ValueError:
        raise Invalid(f"{name} bukan angka / {name} is not a number: {value!r}", code="bad-location") from None


def _check_row(row: dict[str, Any], *, allow_foreign: bool = False) -> SubscriberFields:
    if "__error__" in row:
        raise Invalid(row["__error__"], code="bad-row")
    channels = [c for c in re.split(r"[;|,\s]+", row.get("channels", "")) if c] or ["sms"]
    return check_fields(
        phone=row.get("phone", ""),
        language=row.get("language", "") or "id",
        admin_code=row.get("admin_code") or None,
        lat=_float(row.get("lat", ""), "lat"),
        lon=_float(row.get("lon", ""), "lon"),
        channels=channels,
        x_handle=row.get("x_handle") or None,
        allow_foreign=allow_foreign,
    )


def _locate(points: list[SubscriberFields]) -> list[str | None]:
    """The finest code at each point, vectorised level by level."""
    if not points:
        return []
    lon = np.array([p.lon for p in points], dtype=float)
    lat = np.array([p.lat for p in points], dtype=float)
    out = np.full(len(points), "", dtype="U13")
    for level in LOCATE_LEVELS:
        todo = np.flatnonzero(out == "")
        if not todo.size:
            break
        out[todo] = boundaries.codes_at(lon[todo], lat[todo], level)
    return [str(c) or None for c in out]


def import_rows(
    session: Session,
    rows: Iterable[tuple[int, dict[str, Any]]],
    *,
    skip_invalid: bool = False,
    dry_run: bool = False,
    actor_id: int | None = None,
    source: str = "csv",
    progress: Progress | None = None,
    total: int = 0,
    allow_foreign: bool = False,
) -> ImportReport:
    """Validate every row, then (unless dry_run, or any row is bad without skip_invalid) insert new phones and
    update known ones in bulk, with an audit entry per subscriber created or changed (actor, before, after) and
    one for the import. Flushes; the caller commits.

    Raises: ImportNeedsActor when it would write without a named user.
    """
    if not dry_run and actor_id is None:
        raise ImportNeedsActor(
            "Impor pelanggan harus atas nama pengguna / a subscriber import must name the user who makes it"
        )
    started = time.perf_counter()
    report = ImportReport()
    good: dict[str, tuple[int, SubscriberFields]] = {}
    for line, row in rows:
        report.rows += 1
        try:
            fields = _check_row(row, allow_foreign=allow_foreign)
        except BroadcastError as exc:
            report.errors.append(RowError(line, str(exc)))
        else:
            if fields.phone in good:
                report.repeated.append((line, good[fields.phone][0]))
            good[fields.phone] = (line, fields)
        if progress is not None and report.rows % 1000 == 0:
            progress("check", report.rows, total)
    if progress is not None:
        progress("check", report.rows, total or report.rows)
    report.valid = len(good)
    if report.errors and not skip_invalid:
        report.seconds = time.perf_counter() - started
        return report
    items = [f for _, f in good.values()]
    need = [i for i, f in enumerate(items) if f.admin_code is None]
    for i, code in zip(need, _locate([items[i] for i in need]), strict=True):
        f = items[i]
        items[i] = SubscriberFields(f.phone, f.language, code, f.lat, f.lon, f.channels, f.x_handle)
    existing: dict[str, tuple[int, bool]] = {}
    before: dict[str, dict[str, Any]] = {}
    phones = [f.phone for f in items]
    state_cols = [TABLE.c[name] for name in _STATE_COLUMNS]
    for start in range(0, len(phones), WRITE_CHUNK):
        some = phones[start : start + WRITE_CHUNK]
        stmt = select(TABLE.c.phone, TABLE.c.id, *state_cols).where(TABLE.c.phone.in_(some))
        for phone, sid, *state in session.execute(stmt):
            row_state = dict(zip(_STATE_COLUMNS, state, strict=True))
            existing[phone] = (sid, bool(row_state["active"]))
            before[phone] = row_state
    new = [f for f in items if f.phone not in existing]
    known = [f for f in items if f.phone in existing]
    report.inserted, report.updated = len(new), len(known)
    report.stopped_kept = sum(1 for f in known if not existing[f.phone][1])
    if dry_run:
        report.seconds = time.perf_counter() - started
        return report
    now = utcnow()
    done = 0
    for start in range(0, len(new), WRITE_CHUNK):
        chunk = new[start : start + WRITE_CHUNK]
        # Core executemany on the table: the ORM bulk path splits rows into one statement per change in
        # which columns are NULL (lat/lon), which made PostgreSQL imports ten times slower.
        session.execute(
            insert(TABLE),
            [
                {
                    "phone": f.phone,
                    "language": f.language,
                    "admin_code": f.admin_code,
                    "lat": f.lat,
                    "lon": f.lon,
                    "channels": list(f.channels),
                    "x_handle": f.x_handle,
                    "active": True,
                    "created_at": now,
                }
                for f in chunk
            ],
        )
        done += len(chunk)
        if progress is not None:
            progress("write", done, len(items))
    for start in range(0, len(known), WRITE_CHUNK):
        chunk = known[start : start + WRITE_CHUNK]
        session.execute(
            update(TABLE).where(TABLE.c.id == bindparam("sid")),
            [
                {
                    "sid": existing[f.phone][0],
                    "language": f.language,
                    "admin_code": f.admin_code,
                    "lat": f.lat,
                    "lon": f.lon,
                    "channels": list(f.channels),
                    "x_handle": f.x_handle,
                }
                for f in chunk
            ],
        )
        done += len(chunk)
        if progress is not None:
            progress("write", done, len(items))
    session.flush()
    _audit_each(session, new=new, known=known, existing=existing, before=before, actor_id=actor_id, source=source)
    audit.record(
        session,
        actor_id=actor_id,
        action="subscriber.import",
        subject_type="subscriber",
        subject_id=None,
        after={
            "source": source,
            "rows": report.rows,
            "inserted": report.inserted,
            "updated": report.updated,
            "bad_rows": [e.line for e in report.errors][:1000],
        },
    )
    report.applied = True
    report.seconds = time.perf_counter() - started
    return report


def _audit_each(
    session: Session,
    *,
    new: list[SubscriberFields],
    known: list[SubscriberFields],
    existing: dict[str, tuple[int, bool]],
    before: dict[str, dict[str, Any]],
    actor_id: int | None,
    source: str,
) -> None:
    """One audit entry per subscriber the import created, and per subscriber whose fields it changed."""
    ids: dict[str, int] = {}
    new_phones = [f.phone for f in new]
    for start in range(0, len(new_phones), WRITE_CHUNK):
        some = new_phones[start : start + WRITE_CHUNK]
        found = session.execute(select(TABLE.c.phone, TABLE.c.id).where(TABLE.c.phone.in_(some)))
        ids |= {phone: int(sid) for phone, sid in found}
    entries: list[dict[str, Any]] = []
    for f in new:
        state = {**_fields_state(f), "active": True}
        entries.append(
            {
                "actor_id": actor_id,
                "action": "subscriber.import_create",
                "subject_type": "subscriber",
                "subject_id": ids[f.phone],
                "after": {**_view(f.phone, state), "source": source},
            }
        )
    for f in known:
        old = before[f.phone]
        state = {**_fields_state(f), "active": old["active"]}
        was, now = _view(f.phone, old), _view(f.phone, state)
        if was == now:
            continue
        entries.append(
            {
                "actor_id": actor_id,
                "action": "subscriber.import_update",
                "subject_type": "subscriber",
                "subject_id": existing[f.phone][0],
                "before": was,
                "after": {**now, "source": source},
            }
        )
    audit.record_many(session, entries=entries)


def _fields_state(f: SubscriberFields) -> dict[str, Any]:
    return {
        "language": f.language,
        "admin_code": f.admin_code,
        "lat": f.lat,
        "lon": f.lon,
        "channels": list(f.channels),
        "x_handle": f.x_handle,
    }

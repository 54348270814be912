"""Intake: every source's report stored raw first, in one INSERT, pending enrichment; never a phone number.

- The one intake (`intake_values`, `store_many`, `intake`): partners' API, the `/lapor` form, the demo replay.
  Under a spike the `IntakeWriter` turns concurrent report POSTs into one multi-row INSERT and one commit per
  batch: a request gets its answer only after its row is committed (nothing acknowledged is lost); whatever
  arrived while the previous batch was being written goes in the next one, so commits (and their fsync) are
  shared instead of paid per report. With one request at a time a batch is that one row: no added wait. A batch
  the database refuses (one bad report) is written again one report per transaction, so only the bad one fails;
  a database that cannot be reached fails the whole batch at once. With `batching=False` every request writes its
  own row in its own transaction (the naive path, a baseline).
- Provider messages (`store_inbound`): an SMS or a post stored once per provider message id, the sender only as
  a keyed hash (`author_hash`).
- X (`ingest_x_mentions`, `ingest_x_search`): polled from a saved checkpoint, moved forward with the reports it
  covers.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.to_thread
from sqlalchemy import Engine, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from broadcast.db import session_scope, utcnow
from broadcast.errors import Invalid
from broadcast.reports import rules
from broadcast.reports.models import PollCheckpoint, Report
from channels.base import InboundEvent
from channels.social import poll_mentions, poll_search

__all__ = [
    "MAX_TEXT",
    "IntakeWriter",
    "InvalidReport",
    "author_hash",
    "check_coordinates",
    "find_checkpoint",
    "find_report",
    "get_checkpoint",
    "ingest_x_mentions",
    "ingest_x_search",
    "intake",
    "intake_values",
    "set_checkpoint",
    "store_inbound",
    "store_many",
    "store_x_post",
]

log = logging.getLogger(__name__)

# Form fields that carry the sender's own number; stored only as the keyed hash.
PHONE_FIELDS = ("From",)
MAX_TEXT = 4000
MAX_MEDIA = 10
MAX_BATCH = 500
EXTERNAL_ID_MAX = 128
# A partner's clock may run a little ahead of ours; more than this is not a clock, it is a wrong date.
MAX_CLOCK_SKEW = timedelta(minutes=5)


class InvalidReport(Invalid):
    code = "invalid-report"


# ---------------------------------------------------------------------------------------------------------------
# Provider messages: stored once per provider message id, the sender only as a keyed hash


def author_hash(key: bytes, phone: str) -> str:
    """A keyed SHA-256 of a phone number: the same sender links their reports, the number is never stored."""
    return hmac.new(key, phone.encode(), hashlib.sha256).hexdigest()


def find_report(session: Session, *, source: str, external_id: str) -> Report | None:
    """The report a provider message became, or None."""
    return session.scalar(select(Report).where(Report.source == source, Report.external_id == external_id))


def store_inbound(
    session: Session, *, source: str, external_id: str, raw: Mapping[str, object], author: str
) -> tuple[Report, bool]:
    """Store a provider's raw payload once (the sender's number replaced by `author`, their hash).

    Returns the report and whether it is new; a second delivery of the same message returns the first row.
    """
    existing = find_report(session, source=source, external_id=external_id)
    if existing is not None:
        return existing, False
    payload = {k: (f"hmac:{author}" if k in PHONE_FIELDS else v) for k, v in raw.items()}
    report = Report(source=source, external_id=external_id, raw=payload, author_hash=author, state="new")
    try:
        with session.begin_nested():
            session.add(report)
            session.flush()
    except IntegrityError:
        # A concurrent delivery of the same webhook stored it first.
        found = find_report(session, source=source, external_id=external_id)
        if found is None:
            raise
        return found, False
    return report, True


def find_checkpoint(session: Session, *, name: str) -> PollCheckpoint | None:
    """The saved state named `name` (a poller's position, an SMS sender's pending choice), if any."""
    return session.get(PollCheckpoint, name)


def get_checkpoint(session: Session, *, name: str) -> str | None:
    """The value a poller saved under `name`, or None on its first run."""
    row = find_checkpoint(session, name=name)
    return row.value if row else None


def set_checkpoint(session: Session, *, name: str, value: str) -> None:
    """Save a poller's position; committed with the reports it covers, so neither runs ahead of the other."""
    row = session.get(PollCheckpoint, name)
    if row is None:
        session.add(PollCheckpoint(name=name, value=value))
    else:
        row.value = value
    session.flush()


def store_x_post(session: Session, *, event: InboundEvent, account: str, author_key: bytes) -> tuple[Report, bool]:
    """A post that mentions an agency account, stored once as a new report (the author only as a keyed hash,
    coordinates when the post carries them; place names are left for the report pipeline)."""
    tweet = dict(event.raw.get("tweet") or {})  # type: ignore[call-overload]
    raw = {"account": account, "tweet": tweet, "author_id": tweet.get("author_id")}
    report, new = store_inbound(
        session, source="x", external_id=event.external_id, raw=raw, author=author_hash(author_key, event.sender)
    )
    if new:
        report.text = event.text
        created = tweet.get("created_at")
        if isinstance(created, str):
            report.received_at = datetime.fromisoformat(created.replace("Z", "+00:00"))
        coordinates = (tweet.get("geo") or {}).get("coordinates") or {}
        if coordinates.get("type") == "Point":
            report.lon, report.lat = coordinates["coordinates"][:2]
        session.flush()
    return report, new


def ingest_x_mentions(session: Session, *, client: object, account: str, user_id: str, author_key: bytes) -> int:
    """Poll one account's mentions from its checkpoint and store each new one; returns how many were new.

    Raises: the channel's errors (RateLimited, ChannelUnavailable) with nothing stored or moved forward.
    """
    name = f"x-mentions:{user_id}"
    poll = poll_mentions(client, user_id, get_checkpoint(session, name=name))
    new = 0
    for event in poll.events:
        new += store_x_post(session, event=event, account=account, author_key=author_key)[1]
    if poll.since_id:
        set_checkpoint(session, name=name, value=poll.since_id)
    return new


def ingest_x_search(session: Session, *, client: object, query: str, author_key: bytes) -> int:
    """Run the configured keyword search from its checkpoint and store each new post as a report.

    Raises: the channel's errors with nothing stored or moved forward.
    """
    name = "x-search:" + hashlib.sha256(query.encode()).hexdigest()[:16]
    poll = poll_search(client, query, get_checkpoint(session, name=name))
    new = 0
    for event in poll.events:
        new += store_x_post(session, event=event, account=f"search:{query}", author_key=author_key)[1]
    if poll.since_id:
        set_checkpoint(session, name=name, value=poll.since_id)
    return new


# ---------------------------------------------------------------------------------------------------------------
# One intake for every source: the raw payload is stored in one INSERT, enrichment happens later in Celery.


def check_coordinates(lat: float | None, lon: float | None) -> None:
    """Both or neither, and on the globe.

    Raises: InvalidReport.
    """
    if (lat is None) != (lon is None):
        raise InvalidReport("Lintang dan bujur harus diisi keduanya / give both lat and lon, or neither")
    if lat is not None and lon is not None and not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise InvalidReport("Koordinat di luar jangkauan / coordinates out of range")


def _storable_external_id(external_id: str) -> str:
    """The id as stored (at most EXTERNAL_ID_MAX characters): unchanged when it fits, otherwise its start and a
    SHA-256 of the whole, so two long ids that differ anywhere stay two reports (never cut into one)."""
    if len(external_id) <= EXTERNAL_ID_MAX:
        return external_id
    digest = hashlib.sha256(external_id.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{external_id[: EXTERNAL_ID_MAX - len(digest) - 1]}#{digest}"


def intake_values(
    *,
    source: str,
    external_id: str,
    raw: Mapping[str, object],
    text: str,
    author: str | None,
    lat: float | None = None,
    lon: float | None = None,
    media: Sequence[str] = (),
    received_at: datetime | None = None,
    language: str | None = None,
    hazard: str | None = None,
    admin_code: str | None = None,
    depth_cm: int | None = None,
) -> dict[str, Any]:
    """The row a report becomes at intake: its raw payload and normalised fields, pending enrichment.

    Raises: InvalidReport (unknown source, bad coordinates).
    """
    if source not in rules.SOURCES:
        raise InvalidReport(f"Sumber tidak dikenal / unknown source {source!r}")
    check_coordinates(lat, lon)
    now = utcnow()
    when = received_at if received_at is None or received_at.tzinfo else received_at.replace(tzinfo=UTC)
    if when is not None and when > now + MAX_CLOCK_SKEW:
        raise InvalidReport(
            "Waktu kejadian di masa depan / occurred_at is in the future (a report cannot come from the future; it "
            "would stay on top of every recent list)"
        )
    return {
        "source": source,
        "external_id": _storable_external_id(external_id),
        "raw": dict(raw),
        "text": text.strip()[:MAX_TEXT],
        "author_hash": author,
        "language": language,
        "lat": lat,
        "lon": lon,
        "media": list(media)[:MAX_MEDIA],
        "hazard": hazard if hazard in rules.HAZARD_RULES else None,
        "admin_code": admin_code,
        "depth_cm": depth_cm,
        "state": "new",
        "processing": "pending",
        "attempts": 0,
        "received_at": received_at or now,
        "place_names": [],
        "alert_ids": [],
    }


def store_many(session: Session, rows: Sequence[dict[str, Any]]) -> list[tuple[int, bool]]:
    """Store intake rows in one multi-row INSERT; per row (report id, created). A (source, external_id) already
    stored, or repeated within the batch, stores nothing new and gives the first row's id."""
    if not rows:
        return []
    if session.get_bind().dialect.name == "postgresql":
        inserted = _insert_recordset(session, rows)
    else:
        stmt = (
            sqlite_insert(Report)
            .values(list(rows))
            .on_conflict_do_nothing(index_elements=["source", "external_id"])
            .returning(Report.id, Report.source, Report.external_id)
        )
        inserted = {(src, ext): int(rid) for rid, src, ext in session.execute(stmt).all()}
    keys = [(r["source"], r["external_id"]) for r in rows]
    missing = {k for k in keys if k not in inserted}
    existing: dict[tuple[str, str], int] = {}
    if missing:
        found = session.execute(
            select(Report.id, Report.source, Report.external_id).where(
                Report.external_id.in_([ext for _, ext in missing])
            )
        )
        existing = {(src, ext): int(rid) for rid, src, ext in found if (src, ext) in missing}
    out: list[tuple[int, bool]] = []
    claimed: set[tuple[str, str]] = set()
    for key in keys:
        if key in inserted and key not in claimed:
            claimed.add(key)
            out.append((inserted[key], True))
        else:
            out.append((inserted.get(key) or existing[key], False))
    return out


# PostgreSQL intake: one statement text whatever the batch size, the whole batch as one JSON parameter read back
# as rows by json_to_recordset. psycopg parses the statement once and prepares it on the server; Python only
# serialises the batch (C json encoder), instead of SQLAlchemy compiling and psycopg re-parsing a multi-row
# VALUES statement of a new shape, with one bound parameter per value, for every batch.
_RECORDSET_COLUMNS: tuple[tuple[str, str], ...] = (
    ("source", "text"),
    ("external_id", "text"),
    ("raw", "json"),
    ("text", "text"),
    ("author_hash", "text"),
    ("language", "text"),
    ("lat", "float8"),
    ("lon", "float8"),
    ("media", "json"),
    ("hazard", "text"),
    ("admin_code", "text"),
    ("depth_cm", "int"),
    ("state", "text"),
    ("processing", "text"),
    ("attempts", "int"),
    ("received_at", "timestamptz"),
    ("place_names", "json"),
    ("alert_ids", "json"),
)
_RECORDSET_INSERT = (
    f"INSERT INTO reports ({', '.join(name for name, _ in _RECORDSET_COLUMNS)}) "  # noqa: S608 (constant names)
    f"SELECT {', '.join(name for name, _ in _RECORDSET_COLUMNS)} FROM json_to_recordset(%s::json) "
    f"AS t({', '.join(f'{name} {kind}' for name, kind in _RECORDSET_COLUMNS)}) "
    "ON CONFLICT (source, external_id) DO NOTHING RETURNING id, source, external_id"
)


def _insert_recordset(session: Session, rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str], int]:
    """PostgreSQL: insert the rows (skipping stored keys); the new rows' ids by (source, external_id)."""
    batch = json.dumps(
        [{**row, "received_at": row["received_at"].astimezone(UTC).isoformat()} for row in rows],
        ensure_ascii=False,
        allow_nan=False,
    )
    result = session.connection().exec_driver_sql(_RECORDSET_INSERT, (batch,))
    return {(src, ext): int(rid) for rid, src, ext in result.all()}


def intake(session: Session, **fields: Any) -> tuple[int, bool]:
    """Store one report (raw payload and normalised fields, one INSERT), pending enrichment.

    Returns (report id, created); the same (source, external_id) twice stores nothing new.
    Raises: InvalidReport (unknown source, bad coordinates).
    """
    return store_many(session, [intake_values(**fields)])[0]


class IntakeWriter:
    """Coalesces intake rows from concurrent requests (one writer task per event loop)."""

    def __init__(
        self, engine: Engine, *, after_commit: Callable[[], None], max_batch: int = MAX_BATCH, batching: bool = True
    ) -> None:
        self.engine = engine
        self.after_commit = after_commit
        self.max_batch = max_batch
        self.batching = batching
        self._queue: asyncio.Queue[tuple[dict[str, Any], asyncio.Future[tuple[int, bool]]]] | None = None
        self._task: asyncio.Task[None] | None = None

    async def submit(self, row: dict[str, Any]) -> tuple[int, bool]:
        """Store one intake row; returns (report id, created) once it is committed.

        Raises: whatever the database raised for the batch it was in.
        """
        if not self.batching:
            return (await anyio.to_thread.run_sync(self._write, [row]))[0]
        loop = asyncio.get_running_loop()
        if self._queue is None or self._task is None or self._task.done():
            self._queue = asyncio.Queue()
            self._task = loop.create_task(self._run())
        future: asyncio.Future[tuple[int, bool]] = loop.create_future()
        self._queue.put_nowait((row, future))
        return await future

    def _write(self, rows: list[dict[str, Any]]) -> list[tuple[int, bool]]:
        with session_scope(self.engine) as session:
            results = store_many(session, rows)
        if any(created for _, created in results):
            self.after_commit()
        return results

    async def _one_by_one(self, batch: list[tuple[dict[str, Any], asyncio.Future[tuple[int, bool]]]]) -> None:
        for row, future in batch:
            try:
                result = (await anyio.to_thread.run_sync(self._write, [row]))[0]
            except Exception as exc:
                log.exception("intake of one report failed")
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(result)

    async def _run(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            batch = [await queue.get()]
            while len(batch) < self.max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            try:
                results = await anyio.to_thread.run_sync(self._write, [row for row, _ in batch])
            except Exception as exc:
                if len(batch) == 1 or isinstance(exc, OperationalError | InterfaceError):
                    log.exception("intake batch of %d failed", len(batch))
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                else:
                    # One report the database refuses must not take the others in its batch down with it.
                    log.warning("intake batch of %d refused (%s); writing its reports one by one", len(batch), exc)
                    await self._one_by_one(batch)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

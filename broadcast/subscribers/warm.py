"""A warm, per-process index of active subscribers: loaded once, then kept current from `subscribers.version`.

Every insert and update of a subscriber stamps its row's version (a trigger, migration 0015). The index keeps a
mark (W, P) such that every change with a version below W, except those of the versions in P, has been applied,
and on each use re-reads only the rows with a version at or above W or in P (index scans, usually no rows):

- PostgreSQL: the version is the writing transaction's id. W is the `xmax` of a snapshot taken before the last
  read (every transaction below it had started) and P its in-progress list: a writer that commits late (a
  lower id after a higher one) is read once it has committed, and a long transaction elsewhere on the server
  holds back nothing but its own rows.
- SQLite: writers are serialised and the version is a counter, so W is one past the highest version seen and P
  is empty.

The shared state is read on a connection of its own and so holds only committed rows. A caller's session may
hold uncommitted changes of its own (a test, a request that registers then counts): `snapshot(session)` reads
that session's rows at or above W on top, for this call only.

Changed rows go to a small delta layer over the big base arrays (a stopped subscriber hides its base row; a
moved one is matched at its new place); when the delta grows past a few percent of the base they are merged
in memory (no database read). Snapshots are immutable, so threads share them; one lock orders refreshes.

A forked child (a Celery pool process forked by a worker that loaded the index first) keeps its parent's
arrays, shared copy-on-write (they are never written in place), and its parent's mark: it never loads the
table again, and its first use re-reads every change at or after that mark, so it is as fresh as any index.
It gets its own lock and connection; the parent's connection is left untouched (closing it in the child
would end the parent's session on the server).
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from sqlalchemy import Engine, literal_column, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from broadcast.subscribers import targeting
from broadcast.subscribers.models import Subscriber
from broadcast.subscribers.targeting import SubscriberArrays, TargetSpec, personal_channels

log = logging.getLogger(__name__)

# A subscriber row as the index keeps it: id, lon, lat, admin code, language, channels, active.
Row = tuple[int, float | None, float | None, str | None, str, Any, bool]
MERGE_MIN = 5_000  # the delta is merged into the base past this many rows ...
MERGE_FRACTION = 0.02  # ... or this fraction of the base, whichever is larger
MAX_INDEXES = 8  # databases one process keeps an index for (tests make many; a deployment has one)

_EMPTY_IDS = np.array([], dtype=np.int64)


def _row_columns() -> Any:
    return select(
        Subscriber.id,
        Subscriber.lon,
        Subscriber.lat,
        Subscriber.admin_code,
        Subscriber.language,
        Subscriber.channels,
        Subscriber.active,
    )


def _in_sorted(ids: np.ndarray, sorted_ids: np.ndarray) -> np.ndarray:
    """For each of `ids`, whether it is in `sorted_ids` (ascending)."""
    if sorted_ids.size == 0 or ids.size == 0:
        return np.zeros(ids.size, dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_ids, ids), sorted_ids.size - 1)
    return np.asarray(sorted_ids[pos] == ids)


def _arrays_of(rows: Iterable[Row]) -> SubscriberArrays:
    """SubscriberArrays of the active ones of `rows`."""
    active = sorted((r for r in rows if r[6]), key=lambda r: r[0])
    if not active:
        return targeting.build_arrays([])
    return targeting.build_arrays([targeting.row_arrays([r[:6] for r in active])])


class _Layer:
    """Active subscribers of one layer, and every id the layer speaks for (active or stopped)."""

    __slots__ = ("arrays", "touched")

    def __init__(self, arrays: SubscriberArrays, touched: np.ndarray) -> None:
        self.arrays, self.touched = arrays, touched


class Snapshot:
    """The active subscribers at one moment: layers, each hiding the rows of the layers below that it speaks
    for. Offers what SubscriberArrays offers (match, within, on_channel, batches, size)."""

    def __init__(self, layers: Sequence[_Layer]) -> None:
        """Build from layers, lowest first (layers above the first that speak for nobody are left out)."""
        self._layers = [layer for i, layer in enumerate(layers) if i == 0 or layer.touched.size]

    @property
    def size(self) -> int:
        """Number of active subscribers."""
        total = 0
        for i, layer in enumerate(self._layers):
            ids = layer.arrays.ids
            for upper in self._layers[i + 1 :]:
                ids = ids[~_in_sorted(ids, upper.touched)]
            total += int(ids.size)
        return total

    def match(self, target: TargetSpec) -> np.ndarray:
        """Sorted unique ids of every active subscriber the target reaches (any channel)."""
        if len(self._layers) == 1:
            return self._layers[0].arrays.match(target)
        found = []
        for i, layer in enumerate(self._layers):
            ids = layer.arrays.match(target)
            for upper in self._layers[i + 1 :]:
                ids = ids[~_in_sorted(ids, upper.touched)]
            found.append(ids)
        # A row is in exactly one layer's answer, so the parts are disjoint.
        return np.sort(np.concatenate(found)) if found else _EMPTY_IDS

    def _owners(self, ids: np.ndarray) -> Iterator[tuple[SubscriberArrays, np.ndarray]]:
        """`ids` (each active, e.g. from match) split by the topmost layer holding them."""
        if len(self._layers) == 1:
            yield self._layers[0].arrays, ids
            return
        rest = ids
        for layer in reversed(self._layers):
            if rest.size == 0:
                return
            here = _in_sorted(rest, layer.arrays.ids)
            if here.any():
                yield layer.arrays, rest[here]
            rest = rest[~here]

    def within(self, ids: np.ndarray, jurisdiction: str | None) -> np.ndarray:
        """Those of `ids` inside `jurisdiction` (None: everyone), as SubscriberArrays.within."""
        if jurisdiction is None or ids.size == 0:
            return ids
        parts = [arrays.within(part, jurisdiction) for arrays, part in self._owners(ids)]
        return np.sort(np.concatenate(parts)) if parts else _EMPTY_IDS

    def on_channel(self, ids: np.ndarray, channel: str) -> np.ndarray:
        """Those of `ids` who receive alerts on `channel`."""
        parts = [arrays.on_channel(part, channel) for arrays, part in self._owners(ids)]
        return np.sort(np.concatenate(parts)) if parts else _EMPTY_IDS

    def channel_counts(self, ids: np.ndarray) -> dict[str, int]:
        """How many of `ids` receive alerts on each personal channel."""
        counts = dict.fromkeys(personal_channels(), 0)
        for arrays, part in self._owners(ids):
            for name, n in arrays.channel_counts(part).items():
                counts[name] += n
        return counts

    def batches(self, ids: np.ndarray, *, batch_size: int = 1000) -> Iterator[list[tuple[int, str]]]:
        """(id, language) of `ids` in batches of at most batch_size, in the order given."""
        languages = np.empty(ids.size, dtype=object)
        rest = np.arange(ids.size)
        for layer in reversed(self._layers):
            arrays = layer.arrays
            here = _in_sorted(ids[rest], arrays.ids)
            pos = np.searchsorted(arrays.ids, ids[rest[here]])
            languages[rest[here]] = arrays.language_values[arrays.language_cat[pos]]
            rest = rest[~here]
        for start in range(0, ids.size, batch_size):
            part = ids[start : start + batch_size].tolist()
            yield list(zip(part, [str(x) for x in languages[start : start + batch_size]], strict=True))


class WarmIndex:
    """The active subscribers of one database, kept in memory and brought up to date on each use."""

    def __init__(self, engine: Engine) -> None:
        """An index for `engine`'s database; nothing is read until the first use."""
        self._engine = engine
        self._lock = threading.Lock()
        self._base: _Layer | None = None
        self._delta: dict[int, Row] = {}
        self._top = _Layer(targeting.build_arrays([]), _EMPTY_IDS)
        self._mark: tuple[int, tuple[int, ...]] = (0, ())
        self._conn: Connection | None = None
        self.pid = os.getpid()
        self.loads = 0  # full loads so far in this process (1 in a healthy process, 0 in a forked child)
        self.merges = 0

    def forked(self) -> WarmIndex:
        """This index as a forked child takes it over: the same arrays and mark, its own lock, no connection."""
        # Connections in the engine's pool are the parent's too: the child opens its own (SQLAlchemy's advice).
        self._engine.dispose(close=False)
        child = WarmIndex(self._engine)
        if self._conn is not None:
            _inherited.append(self._conn)  # never closed or collected here: it is the parent's session
        child._base, child._delta, child._mark = self._base, dict(self._delta), self._mark
        if self._delta:
            # The parent may have forked between a refresh's steps: the top layer is rebuilt from the delta.
            child._top = _Layer(_arrays_of(child._delta.values()), np.array(sorted(child._delta), dtype=np.int64))
        return child

    def nbytes(self) -> int:
        """Bytes held in the index's arrays (what it costs in memory, without allocator overhead)."""
        seen: set[int] = set()

        def walk(obj: object) -> int:
            if id(obj) in seen:
                return 0
            seen.add(id(obj))
            if isinstance(obj, np.ndarray):
                return int(obj.nbytes)
            if isinstance(obj, dict):
                return sum(walk(v) for v in obj.values())
            if isinstance(obj, (list, tuple)):
                return sum(walk(v) for v in obj)
            slots = getattr(type(obj), "__slots__", ())
            fields = [getattr(obj, name) for name in slots if hasattr(obj, name)]
            return sum(walk(v) for v in (*getattr(obj, "__dict__", {}).values(), *fields))

        return sum(walk(layer) for layer in (self._base, self._top) if layer is not None)

    @property
    def mark(self) -> tuple[int, tuple[int, ...]]:
        """(W, P): every change with a version below W and not in P has been applied."""
        return self._mark

    def _postgres(self) -> bool:
        return self._engine.dialect.name == "postgresql"

    def _mark_columns(self) -> Any:
        """The mark of the reading statement's own snapshot, as columns (xmax, xip)."""
        if self._postgres():
            # pg_current_snapshot() is the snapshot the statement reads with (GetActiveSnapshot).
            return select(
                literal_column("pg_snapshot_xmax(pg_current_snapshot())::text::bigint").label("xmax"),
                literal_column("ARRAY(SELECT x::text::bigint FROM pg_snapshot_xip(pg_current_snapshot()) AS x)").label(
                    "xip"
                ),
            ).subquery("now")
        return select(
            literal_column("(SELECT COALESCE(MAX(version), 0) + 1 FROM subscribers)").label("xmax"),
            literal_column("NULL").label("xip"),
        ).subquery("now")

    def _next_mark(self, conn: Connection) -> tuple[int, tuple[int, ...]]:
        now = self._mark_columns()
        row = conn.execute(select(now.c.xmax, now.c.xip)).one()
        return int(row[0]), tuple(sorted(int(x) for x in row[1] or ()))

    def _changed_since(self, conn: Connection, mark: tuple[int, tuple[int, ...]]) -> tuple[Any, list[Row]]:
        """One statement: the rows changed at or after `mark` and the mark of the snapshot they were read in."""
        now = self._mark_columns()
        table = Subscriber.__table__
        stmt = select(now.c.xmax, now.c.xip, *_row_columns().selected_columns).select_from(
            now.outerjoin(table, self._since(mark))
        )
        result = conn.execute(stmt).all()
        head = result[0]
        rows: list[Row] = [(r[2], r[3], r[4], r[5], r[6], r[7], bool(r[8])) for r in result if r[2] is not None]
        return (int(head[0]), tuple(sorted(int(x) for x in head[1] or ()))), rows

    def _connection(self) -> Connection:
        """The index's own autocommit connection (one round trip per refresh: no checkout, ping or BEGIN)."""
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self._conn

    def close(self) -> None:
        """Return the index's connection (the index reconnects if used again)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @staticmethod
    def _since(mark: tuple[int, tuple[int, ...]]) -> Any:
        """Rows changed at or after `mark`."""
        floor, pending = mark
        newer = Subscriber.version >= floor
        return newer if not pending else newer | Subscriber.version.in_(pending)

    def _load(self) -> None:
        with self._engine.connect() as conn:
            mark = self._next_mark(conn)
            # Rows written while this runs have versions at or above the mark: read again next time.
            session = Session(bind=conn)
            base = targeting.load_subscribers(session)
            session.close()
        self._base = _Layer(base, base.ids)
        self._delta, self._top, self._mark = {}, _Layer(targeting.build_arrays([]), _EMPTY_IDS), mark
        self.loads += 1
        _release_freed_memory()
        log.info("warm subscriber index loaded: %d active subscribers", base.size)

    def _refresh(self) -> None:
        if self._base is None:
            self._load()
            return
        try:
            mark, rows = self._changed_since(self._connection(), self._mark)
        except DBAPIError:
            # A dropped connection (database restart, failover): once more on a new one, then give up.
            self.close()
            mark, rows = self._changed_since(self._connection(), self._mark)
        changed = False
        for row in rows:
            if self._delta.get(row[0]) != row:
                self._delta[row[0]] = row
                changed = True
        self._mark = mark
        if not changed:
            return
        if len(self._delta) > max(MERGE_MIN, int(MERGE_FRACTION * self._base.arrays.size)):
            self._merge()
        else:
            self._top = _Layer(_arrays_of(self._delta.values()), np.array(sorted(self._delta), dtype=np.int64))

    def _merge(self) -> None:
        """Fold the delta into the base arrays, in memory."""
        assert self._base is not None
        base = self._base.arrays
        keep = ~_in_sorted(base.ids, np.array(sorted(self._delta), dtype=np.int64))
        top = _arrays_of(self._delta.values())
        ids = np.concatenate([base.ids[keep], top.ids])
        order = np.argsort(ids, kind="stable")
        merged = SubscriberArrays(
            ids[order],
            np.concatenate([base.lon[keep], top.lon])[order],
            np.concatenate([base.lat[keep], top.lat])[order],
            np.concatenate([base.codes[keep], top.codes])[order],
            np.concatenate([base.languages[keep], top.languages])[order],
            {ch: np.concatenate([base.channels[ch][keep], top.channels[ch]])[order] for ch in personal_channels()},
        )
        self._base = _Layer(merged, merged.ids)
        self._delta, self._top = {}, _Layer(targeting.build_arrays([]), _EMPTY_IDS)
        self.merges += 1

    def snapshot(self, session: Session | None = None) -> Snapshot:
        """The active subscribers now: every committed change applied, plus `session`'s own uncommitted ones."""
        with self._lock:
            self._refresh()
            assert self._base is not None
            layers = [self._base, self._top]
            mark = self._mark
        if session is not None:
            # Committed rows are in the layers above; this adds what only this session can see (its own writes).
            own = [
                (r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]))
                for r in session.execute(_row_columns().where(self._since(mark)))
            ]
            if own:
                layers.append(_Layer(_arrays_of(own), np.array(sorted({r[0] for r in own}), dtype=np.int64)))
        return Snapshot(layers)


_indexes: OrderedDict[str, WarmIndex] = OrderedDict()
_registry_lock = threading.Lock()
_inherited: list[Connection] = []  # a parent's connections a forked child holds on to and never uses


def _after_fork_in_child() -> None:
    """Take over the parent's indexes (fresh locks: one may have been held by a thread that did not fork)."""
    global _registry_lock
    _registry_lock = threading.Lock()
    for key, index in list(_indexes.items()):
        _indexes[key] = index.forked()


os.register_at_fork(after_in_child=_after_fork_in_child)


def index_for(engine: Engine) -> WarmIndex:
    """This process's warm index of `engine`'s database (one per database URL; a forked child's starts as its
    parent's)."""
    key = engine.url.render_as_string(hide_password=False)
    with _registry_lock:
        found = _indexes.get(key)
        if found is not None and found.pid != os.getpid():  # forked without the hook (it always runs; belt)
            found = _indexes[key] = found.forked()
        if found is None:
            found = _indexes[key] = WarmIndex(engine)
            while len(_indexes) > MAX_INDEXES:
                _indexes.popitem(last=False)[1].close()
        _indexes.move_to_end(key)
        return found


def _release_freed_memory() -> None:
    """Hand the load's freed buffers (fetched rows, their Python objects) back to the OS: glibc keeps them in its
    heap, and the process would stay at the load's peak (1M subscribers: 68 MB of arrays, 250 MB of RSS). A no-op
    where the C library has no malloc_trim (musl, macOS)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


def snapshot(session: Session) -> Snapshot:
    """The active subscribers as `session` sees them, from this process's warm index of its database."""
    return index_for(session.get_bind().engine).snapshot(session)


def prewarm(engine: Engine) -> threading.Thread:
    """Load the index of `engine`'s database in a background thread (a process's first reach or plan is then
    as fast as the rest)."""

    def run() -> None:
        try:
            index_for(engine).snapshot()
        except Exception:  # a cold index loads on first use instead
            log.warning("warm subscriber index: preload failed", exc_info=True)

    thread = threading.Thread(target=run, name="warm-subscriber-index", daemon=True)
    thread.start()
    return thread

"""Public pages and feeds rendered once per change, not per request (docs/public-cache.md).

A pure ASGI middleware in front of the routes. A GET of a public page or feed (PAGES, and /cek) without
credentials is answered from this process's cache when it holds the page rendered at the current public state;
otherwise the route renders it once (concurrent requests for the same page wait for that one rendering) and the
bytes are kept with a strong ETag (a hash of the bytes, so every process and host gives the same one).

What makes a rendering current is the key: (path, query string, public state version, next expiry).

- The public state version (broadcast.alerts.public) moves forward in the transaction of every alert state
  change. It is read at most every `public_cache_check_ms` per process (one query, off the event loop); a change
  committed by this process is seen at once. A change committed elsewhere (the Celery worker publishing, another
  host) is seen within that interval, well inside the approval -> visible goal of 200 ms.
- The next expiry is the earliest future `expires` of any issued alert, read with the version: when the clock
  passes it the state is read again, so a page never shows an expired alert as active.
- The query string is part of the key as sent (a feed's self link repeats it); a request with a query parameter
  no public route reads is rendered uncached, so random parameters cannot evict the pages everyone reads.

Answers: 304 when If-None-Match holds the ETag; `Cache-Control: public, max-age, stale-while-revalidate` so
browsers and a reverse proxy absorb a spike. Requests with credentials (a signed-in staff member) and requests
carrying only If-Modified-Since go to the route as before; the security headers middleware still turns any
credentialed answer into `no-store`.

/cek lookups (?kode=) are kept in their own space, so random codes cannot push the pages out. A page carrying
the single-use hoax form token (the form is shown with some answers) gets a fresh token per response and no ETag
or public Cache-Control (a shared copy would share the token). A lookup answered from the cache does not
count against the per-address /cek limit: the limit stops walking the code space, and a walk only ever reaches
uncached codes (each rendered, and counted, by the route).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar, cast
from urllib.parse import parse_qsl

from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broadcast.alerts import public
from broadcast.alerts.models import Alert
from broadcast.api.abuse import form_token
from broadcast.api.deps import SESSION_COOKIE
from broadcast.db import get_engine, utcnow
from broadcast.settings import Settings

# Public pages and feeds whose bytes depend only on the path, the query and the public state of alerts.
PAGES = re.compile(
    r"^/(?:"
    r"|peringatan/[^/]+|peringatan/[^/]+/area\.geojson|wilayah/[^/]+|cap/[^/]+\.xml"
    r"|feed/atom\.xml|feed/latihan\.xml|feed/rss\.xml|api/public/alerts"
    r")$"
)
CEK = "/cek"
# Every query parameter a cached route reads; a request with any other renders uncached.
QUERY_NAMES = frozenset({"lang", "wilayah", "severity", "status", "kode"})
# A single-use form token (broadcast.api.abuse.form_token: stamp.nonce.signature), e.g. /cek's hoax form.
FORM_TOKEN = re.compile(rb'name="token" value="(\d+\.[0-9a-f]{16}\.[0-9a-f]{32})"')
PAGE_BYTES = 64 * 1024 * 1024
CEK_BYTES = 16 * 1024 * 1024
ENTRY_MAX_BYTES = 4 * 1024 * 1024
# Headers of the route's answer the cache sets itself (or must not repeat).
_OWN = frozenset({b"content-length", b"etag", b"cache-control"})

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class State:
    """The public state a rendering belongs to."""

    version: int
    next_expiry: datetime | None
    local: int  # this process's count of committed changes when it was read
    read_at: float  # time.monotonic()
    read_wall: datetime


@dataclass(frozen=True, slots=True)
class Entry:
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    etag: bytes
    built_wall: datetime
    token_at: int = -1  # /cek: where the hoax form's token starts in body (-1: the page shows no form)
    token_len: int = 0


class Lru:
    """Entries by key, least recently used dropped first, bounded by count and by bytes."""

    def __init__(self, *, entries: int, max_bytes: int) -> None:
        self.max_entries = entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self._data: OrderedDict[tuple[object, ...], Entry] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: tuple[object, ...]) -> Entry | None:
        with self._lock:
            entry = self._data.get(key)
            if entry is not None:
                self._data.move_to_end(key)
            return entry

    def put(self, key: tuple[object, ...], entry: Entry) -> None:
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self.bytes -= len(old.body)
            self._data[key] = entry
            self.bytes += len(entry.body)
            while self._data and (len(self._data) > self.max_entries or self.bytes > self.max_bytes):
                _, dropped = self._data.popitem(last=False)
                self.bytes -= len(dropped.body)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self.bytes = 0


def read_state(session: Session, *, now: datetime) -> tuple[int, datetime | None] | None:
    """The public state version and the earliest future expiry of an issued alert; None without a version row."""
    version = public.read_version(session)
    if version is None:
        return None
    next_expiry = session.scalar(
        select(func.min(Alert.expires)).where(Alert.state.in_(public.ISSUED), Alert.expires > now)
    )
    return version, next_expiry


def _has_credentials(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"authorization" or (name == b"cookie" and SESSION_COOKIE.encode() in value):
            return True
    return False


class PublicPageCache:
    """The middleware (see the module docstring). `clock` and `wall` are for tests."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: Settings,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = utcnow,
    ) -> None:
        self.app = app
        self.settings = settings
        self.check_s = settings.public_cache_check_ms / 1000
        self.clock = clock
        self.wall = wall
        self.pages = Lru(entries=settings.public_cache_entries, max_bytes=PAGE_BYTES)
        self.cek = Lru(entries=settings.public_cache_cek_entries, max_bytes=CEK_BYTES)
        self.cache_control = (
            f"public, max-age={settings.public_cache_max_age_s}, stale-while-revalidate={settings.public_cache_stale_s}"
        ).encode()
        self.state: State | None = None
        self.renders = 0  # routes called to fill the cache (tests and benchmarks read it)
        self._inflight: dict[tuple[object, ...], asyncio.Future[object]] = {}
        self._warned = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if (
            scope["type"] != "http"
            or scope.get("method") != "GET"
            or not (path == CEK or PAGES.match(path))
            or _has_credentials(scope)
        ):
            await self.app(scope, receive, send)
            return
        query = bytes(scope.get("query_string", b""))
        headers = scope.get("headers", ())
        inm = next((v for n, v in headers if n == b"if-none-match"), None)
        ims = any(n == b"if-modified-since" for n, _ in headers)
        if (ims and inm is None) or not _known_query(query):
            await self.app(scope, receive, send)
            return
        state = await self._current_state()
        if state is None:
            await self.app(scope, receive, send)
            return
        store = self.cek if path == CEK else self.pages
        key = (path, query, state.version, state.next_expiry)
        entry = store.get(key)
        if entry is None or entry.built_wall > self.wall():
            entry = await self._single(("page", key), lambda: self._render(scope, store, key))
        if entry is None:  # not cacheable (an error, a redirect, a cookie): the route answers this request itself
            await self.app(scope, receive, send)
            return
        await self._answer(send, entry, inm=inm)

    async def _current_state(self) -> State | None:
        state = self.state
        if state is not None and self._fresh(state):
            return state
        for _ in range(3):
            result = await self._single(("state",), self._refresh)
            if result is None or not isinstance(result, State):
                return None
            if result.local == public.local_changes():
                return result
        return None  # changes keep landing while we read: render this request uncached

    def _fresh(self, state: State) -> bool:
        now = self.wall()
        return (
            self.clock() - state.read_at < self.check_s
            and state.local == public.local_changes()
            and (state.next_expiry is None or now < state.next_expiry)
            and now >= state.read_wall
        )

    async def _refresh(self) -> State | None:
        local, started, now = public.local_changes(), self.clock(), self.wall()
        read = await run_in_threadpool(self._read, now)
        if read is None:
            self.state = None
            return None
        # Fresh from when the read started: a change committed while it ran is seen within the interval too.
        state = State(read[0], read[1], local, started, now)
        old = self.state
        if old is None or (old.version, old.next_expiry) != (state.version, state.next_expiry):
            self.pages.clear()
            self.cek.clear()
        self.state = state
        return state

    def _read(self, now: datetime) -> tuple[int, datetime | None] | None:
        try:
            with Session(get_engine(self.settings.resolved_database_url)) as session:
                return read_state(session, now=now)
        except SQLAlchemyError as exc:  # no version to trust: every request is rendered (never a stale page)
            if not self._warned:
                log.warning("public page cache off: cannot read the public state version (%s)", exc)
                self._warned = True
            return None

    async def _single(self, key: tuple[object, ...], work: Callable[[], Awaitable[T]]) -> T:
        """Run `work` once for everyone who asks for `key` while it runs (on this event loop)."""
        loop = asyncio.get_running_loop()
        slot = (id(loop), *key)
        running = self._inflight.get(slot)
        if running is not None and running.get_loop() is loop:
            return cast(T, await asyncio.shield(running))
        future: asyncio.Future[object] = loop.create_future()
        self._inflight[slot] = future
        try:
            result = await work()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else must
            raise
        else:
            future.set_result(result)
            return result
        finally:
            if self._inflight.get(slot) is future:
                del self._inflight[slot]

    async def _render(self, scope: Scope, store: Lru, key: tuple[object, ...]) -> Entry | None:
        """Call the route without the client's validators and keep a 200 answer."""
        self.renders += 1
        bare = {
            **scope,
            "headers": [
                (n, v) for n, v in scope.get("headers", ()) if n not in (b"if-none-match", b"if-modified-since")
            ],
        }
        built_wall = self.wall()
        start: Message = {}
        chunks: list[bytes] = []

        async def no_body() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def keep(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(bytes(message.get("body", b"")))

        await self.app(bare, no_body, keep)
        body = b"".join(chunks)
        raw = [(bytes(n).lower(), bytes(v)) for n, v in start.get("headers", ())]
        if start.get("status") != 200 or len(body) > ENTRY_MAX_BYTES or any(n == b"set-cookie" for n, _ in raw):
            return None
        token_at, token_len = -1, 0
        found = list(FORM_TOKEN.finditer(body))
        if len(found) > 1:
            return None
        if found:
            token_at, token_len = found[0].start(1), found[0].end(1) - found[0].start(1)
        entry = Entry(
            headers=tuple((n, v) for n, v in raw if n not in _OWN),
            body=body,
            etag=b'"' + hashlib.sha256(body).hexdigest()[:32].encode() + b'"',
            built_wall=built_wall,
            token_at=token_at,
            token_len=token_len,
        )
        state = self.state
        if state is not None and (state.version, state.next_expiry) == key[2:]:
            store.put(key, entry)
        return entry

    async def _answer(self, send: Send, entry: Entry, *, inm: bytes | None) -> None:
        if entry.token_at >= 0:
            token = form_token(self.settings, form="hoaks").encode()
            body = entry.body[: entry.token_at] + token + entry.body[entry.token_at + entry.token_len :]
            headers = [*entry.headers, (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        validators = [(b"etag", entry.etag), (b"cache-control", self.cache_control)]
        if inm is not None and _matches(inm, entry.etag):
            kept = [(n, v) for n, v in entry.headers if n in (b"last-modified", b"vary")]
            await send({"type": "http.response.start", "status": 304, "headers": [*kept, *validators]})
            await send({"type": "http.response.body", "body": b""})
            return
        headers = [*entry.headers, *validators, (b"content-length", str(len(entry.body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": entry.body})


def _matches(inm: bytes, etag: bytes) -> bool:
    tags = {t.strip() for t in inm.split(b",")}
    return etag in tags or b"*" in tags or b"W/" + etag in tags


def _known_query(query: bytes) -> bool:
    if not query:
        return True
    try:
        pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    except ValueError:
        return False
    return all(name in QUERY_NAMES for name, _ in pairs)


def install(app: FastAPI, settings: Settings) -> None:
    """Add the cache to the app when `public_cache` is on (first, so it runs inside every other middleware)."""
    if settings.public_cache:
        app.add_middleware(PublicPageCache, settings=settings)

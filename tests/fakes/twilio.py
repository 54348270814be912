"""A local fake of Twilio's Messages REST API for tests: the real twilio SDK talks to it over HTTP.

Start it with ``with FakeTwilio() as fake:`` (127.0.0.1, a port the OS picks) and build the SDK client with
``fake.client()``. It checks Basic auth, stores messages, serves Twilio-style pages, records every request
and can be told to fail: ``fake.fail_next(2, status=429, code=20429)``, ``fake.reject_number(n)``,
``fake.latency = 0.01``.

WhatsApp: ``fake.add_content(sid, body)`` registers an approved template (Content API); a message with
``ContentSid`` and ``ContentVariables`` is stored with the body WhatsApp would show (the fake fills ``{{n}}`` itself),
an unknown SID or a missing variable is refused like Twilio. ``fake.status_callback(sid, "delivered")`` gives the
URL and form Twilio would post to the message's StatusCallback, ``fake.sign(url, form)`` its X-Twilio-Signature.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import secrets
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import format_datetime
from functools import lru_cache
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

from twilio.rest import Client

from channels.sms import build_client, sms_segments

MESSAGES_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<sid>[^/]+)/Messages\.json$")


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received, as it arrived."""

    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    authorized: bool
    at: float


@dataclass(frozen=True)
class Failure:
    """How the fake answers one request instead of serving it."""

    status: int = 500
    code: int | None = None
    message: str = "fake failure"
    retry_after: str | None = None  # Retry-After header value
    rfc9457: bool = False  # answer with a problem-details body (type, title, status, code)
    drop: bool = False  # close the connection without answering
    hang: float = 0.0  # sleep this long before answering (to trip the client's timeout)


@dataclass(frozen=True)
class Reply:
    """How the fake answers one request, whichever server carries it."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (latency, a hanging failure)
    drop: bool = False  # close the connection instead of answering


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    failures: deque[Failure] = field(default_factory=deque)
    rejected: dict[str, tuple[int, int]] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    requests: list[RecordedRequest] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    latency: float = 0.0
    page_size: int = 50
    contents: dict[str, str] = field(default_factory=dict)  # content SID → template body (WhatsApp)


@lru_cache(maxsize=256)
def _segments(body: str) -> str:
    return str(sms_segments(body).segments)  # a fan-out sends few distinct bodies: count each once


@lru_cache(maxsize=64)  # messages stored within one second share the text
def _rfc2822(when: datetime) -> str:
    return format_datetime(when)  # "Thu, 26 Nov 2026 03:00:00 +0000", like Twilio


def _parse_filter_date(value: str) -> datetime:
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise ValueError(value)


class FakeTwilio:
    """An HTTP server on 127.0.0.1 that answers like Twilio's Messages API: threaded (http.server) by default,
    or ``server="asyncio"`` (one event-loop thread and httptools' parser, far cheaper per request) with the same
    behaviour."""

    def __init__(
        self,
        account_sid: str = "AC" + "f" * 32,
        auth_token: str = "fake-auth-token",  # noqa: S107 - the fake's own made-up credential
        *,
        server: str = "threaded",
    ) -> None:
        if server not in ("threaded", "asyncio"):
            raise ValueError("server must be 'threaded' or 'asyncio'")
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.server_kind = server
        self._state = _State()
        self._sids = itertools.count(1)
        self._auth_header = "Basic " + base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: Any = None
        self._transports: set[asyncio.BaseTransport] = set()  # the asyncio server's open connections
        self._address: tuple[str, int] | None = None

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> FakeTwilio:
        """Listen on 127.0.0.1 on a port the OS picks, serving from a background thread."""
        if self.server_kind == "asyncio":
            return self._start_asyncio()
        handler = _make_handler(self)
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler, bind_and_activate=False)
        server.daemon_threads = True
        server.request_queue_size = 512  # a burst of concurrent sends must not overflow the backlog
        server.server_bind()
        server.server_activate()
        self._server = server
        # A short poll interval so stop() returns at once instead of after half a second.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-twilio", daemon=True
        )
        self._thread.start()
        self._address = server.server_address[:2]
        return self

    def _start_asyncio(self) -> FakeTwilio:
        try:
            import uvloop  # with uvicorn[standard]; a faster loop when present

            loop = uvloop.new_event_loop()
        except ImportError:
            loop = asyncio.new_event_loop()
        server = loop.run_until_complete(loop.create_server(lambda: _FastHttp(self, loop), "127.0.0.1", 0, backlog=512))
        self._address = server.sockets[0].getsockname()[:2]
        self._loop, self._runner = loop, server
        self._thread = threading.Thread(target=loop.run_forever, name="fake-twilio", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._loop is not None:
            loop, server, self._loop, self._runner = self._loop, self._runner, None, None

            async def close() -> None:
                server.close()
                for transport in list(self._transports):  # idle keep-alive connections too
                    transport.abort()

            asyncio.run_coroutine_threadsafe(close(), loop).result(timeout=10)
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=10)
            loop.close()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeTwilio:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:54321."""
        assert self._address is not None, "start() the fake first"
        host, port = self._address
        return f"http://{host}:{port}"

    def stats(self) -> dict[str, Any]:
        """Counts for benchmarks: message requests, distinct recipients, the most any one got, the most in any
        one-second window, first/last time."""
        posts = [r for r in self.requests if r.method == "POST"]
        per_to: dict[str, int] = {}
        for r in posts:
            per_to[r.form.get("To", "")] = per_to.get(r.form.get("To", ""), 0) + 1
        times = sorted(r.at for r in posts)
        busiest, lo = 0, 0
        for hi, t in enumerate(times):  # the most requests in any one-second window
            while t - times[lo] >= 1.0:
                lo += 1
            busiest = max(busiest, hi - lo + 1)
        return {
            "posts": len(posts),
            "max_in_any_second": busiest,
            "distinct_to": len(per_to),
            "max_per_to": max(per_to.values(), default=0),
            "first_at": posts[0].at if posts else None,
            "last_at": posts[-1].at if posts else None,
        }

    def client(self, *, timeout: float = 5.0, pool_size: int = 32, auth_token: str | None = None) -> Client:
        """A real twilio Client pointed at this fake (through channels.sms.TwilioHttp)."""
        return build_client(
            self.account_sid,
            auth_token if auth_token is not None else self.auth_token,
            timeout=timeout,
            pool_size=pool_size,
            api_base_url=self.url,
        )

    # -- programming ---------------------------------------------------------------------------------
    @property
    def latency(self) -> float:
        """Seconds every request waits before it is answered."""
        return self._state.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self._state.latency = seconds

    @property
    def page_size(self) -> int:
        """Default page size of list requests without PageSize."""
        return self._state.page_size

    @page_size.setter
    def page_size(self, size: int) -> None:
        self._state.page_size = size

    def fail_next(self, n: int = 1, status: int = 500, code: int | None = None, **kw: Any) -> None:
        """Answer the next `n` requests (after any failures already queued) with this failure."""
        with self._state.lock:
            self._state.failures.extend(Failure(status=status, code=code, **kw) for _ in range(n))

    def reject_number(self, number: str, code: int = 21211, status: int = 400) -> None:
        """Refuse every message to `number` with this Twilio error code."""
        with self._state.lock:
            self._state.rejected[number] = (status, code)

    def add_message(self, to: str, body: str, *, sent: datetime, sender: str = "+15005550006") -> dict[str, Any]:
        """Store a message as if it had been sent at `sent` (for list and paging tests)."""
        sent = sent.astimezone(UTC).replace(microsecond=0)
        return self._store({"To": to, "Body": body, "From": sender}, sent)

    def add_content(self, sid: str, body: str) -> None:
        """Register an approved content template (its body with {{1}}, {{2}}, … variables)."""
        with self._state.lock:
            self._state.contents[sid] = body

    def status_callback(self, sid: str, status: str, *, error_code: int | None = None) -> tuple[str, dict[str, str]]:
        """The URL and form Twilio posts to message `sid`'s StatusCallback when its status becomes `status`.

        Raises: KeyError for an unknown message or one sent without a StatusCallback.
        """
        with self._state.lock:
            message = next(m for m in self._state.messages if m["sid"] == sid)
        url = message["_callback"]
        if not url:
            raise KeyError(f"message {sid} has no StatusCallback")
        form = {
            "MessageSid": sid,
            "SmsSid": sid,
            "MessageStatus": status,
            "SmsStatus": status,
            "AccountSid": self.account_sid,
            "To": message["to"] or "",
            "From": message["from"] or "",
            "ApiVersion": "2010-04-01",
        }
        if str(message["to"] or "").startswith("whatsapp:"):
            form["ChannelPrefix"] = "whatsapp"
        if error_code is not None:
            form["ErrorCode"] = str(error_code)
        return url, form

    def sign(self, url: str, form: dict[str, str], *, token: str | None = None) -> str:
        """X-Twilio-Signature of `form` posted to `url`, as Twilio computes it (with this account's token)."""
        from twilio.request_validator import RequestValidator

        return str(RequestValidator(token or self.auth_token).compute_signature(url, form))

    # -- inspection ----------------------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in arrival order."""
        with self._state.lock:
            return list(self._state.requests)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Every stored message, oldest first."""
        with self._state.lock:
            return list(self._state.messages)

    @property
    def max_in_flight(self) -> int:
        """The most requests the fake was serving at the same moment."""
        return self._state.max_in_flight

    # -- behaviour -----------------------------------------------------------------------------------
    def _store(self, form: dict[str, str], when: datetime) -> dict[str, Any]:
        sid = f"SM{next(self._sids):032x}"
        body = form.get("Body", "")
        if form.get("ContentSid"):
            body = self._fill(form["ContentSid"], form.get("ContentVariables", "{}"))
        path = f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json"
        message = {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": body,
            "date_created": _rfc2822(when),
            "date_updated": _rfc2822(when),
            # The fake hands messages over at once, so date_sent is set when it is created.
            "date_sent": _rfc2822(when),
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "num_media": "0",
            "num_segments": _segments(body),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued",
            "subresource_uris": {"media": path.replace(".json", "/Media.json")},
            "to": form.get("To"),
            "uri": path,
            "_sent_at": when,
            "_callback": form.get("StatusCallback", ""),
        }
        with self._state.lock:
            self._state.messages.append(message)
        return message

    def _public(self, message: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in message.items() if not k.startswith("_")}

    def _create(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        to = form.get("To", "")
        if not to:
            return 400, {"code": 21604, "message": "A 'To' phone number is required.", "status": 400}
        if not form.get("From") and not form.get("MessagingServiceSid"):
            return 400, {"code": 21603, "message": "A 'From' phone number is required.", "status": 400}
        with self._state.lock:
            rejected = self._state.rejected.get(to)
        whatsapp = to.startswith("whatsapp:")
        if whatsapp and not (form.get("From", "").startswith("whatsapp:") or form.get("MessagingServiceSid")):
            return 400, {
                "code": 63007,
                "message": "Twilio could not find a Channel with the From address",
                "status": 400,
            }
        if form.get("ContentSid"):
            refused = self._content_error(form["ContentSid"], form.get("ContentVariables", "{}"))
            if refused is not None:
                return 400, refused
        elif whatsapp and not form.get("Body"):
            return 400, {
                "code": 21619,
                "message": "A text message body or media urls must be specified.",
                "status": 400,
            }
        if rejected is not None:
            status, code = rejected
            return status, {"code": code, "message": f"The 'To' number {to} is not valid.", "status": status}
        now = datetime.now(UTC).replace(microsecond=0)
        return 201, self._public(self._store(form, now))

    def _content_error(self, sid: str, raw_variables: str) -> dict[str, Any] | None:
        with self._state.lock:
            body = self._state.contents.get(sid)
        if body is None:
            return {"code": 21655, "message": "The ContentSid is Invalid.", "status": 400}
        try:
            values = json.loads(raw_variables)
        except ValueError:
            values = None
        needed = set(re.findall(r"\{\{(\d+)\}\}", body))
        if not isinstance(values, dict) or not needed <= set(values):
            return {"code": 21656, "message": "The ContentVariables Parameter is invalid.", "status": 400}
        if any(not str(values[n]).strip() or "\n" in str(values[n]) or "\t" in str(values[n]) for n in needed):
            return {"code": 63028, "message": "Number of parameters does not match / invalid parameter.", "status": 400}
        return None

    def _fill(self, sid: str, raw_variables: str) -> str:
        with self._state.lock:
            body = self._state.contents[sid]
        values = json.loads(raw_variables)
        return re.sub(r"\{\{(\d+)\}\}", lambda m: str(values[m.group(1)]), body)

    def _list(self, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        try:
            after = _parse_filter_date(query["DateSent>"]) if "DateSent>" in query else None
            before = _parse_filter_date(query["DateSent<"]) if "DateSent<" in query else None
            page = int(query.get("Page", "0"))
            size = min(1000, int(query.get("PageSize", str(self._state.page_size))))
        except ValueError:
            return 400, {"code": 20001, "message": "Invalid filter", "status": 400}
        with self._state.lock:
            found = [
                m
                for m in self._state.messages
                if (not query.get("To") or m["to"] == query["To"])
                and (not query.get("From") or m["from"] == query["From"])
                and (after is None or m["_sent_at"] >= after)
                and (before is None or m["_sent_at"] <= before)
            ]
        # Twilio lists newest first.
        found.sort(key=lambda m: (m["_sent_at"], m["sid"]), reverse=True)
        start = page * size
        chunk = found[start : start + size]
        base = f"/2010-04-01/Accounts/{self.account_sid}/Messages.json"
        keep = {k: v for k, v in query.items() if k not in ("Page", "PageSize", "PageToken")}

        def uri(p: int) -> str:
            token = {"PageToken": f"PA{chunk[-1]['sid']}"} if p > page and chunk else {}
            return f"{base}?{urlencode({**keep, 'PageSize': size, 'Page': p, **token})}"

        has_next = start + size < len(found)
        return 200, {
            "messages": [self._public(m) for m in chunk],
            "page": page,
            "page_size": size,
            "start": start,
            "end": start + max(0, len(chunk) - 1),
            "uri": uri(page),
            "first_page_uri": uri(0),
            "previous_page_uri": uri(page - 1) if page > 0 else None,
            "next_page_uri": uri(page + 1) if has_next else None,
        }

    def _authorized(self, header: str | None) -> bool:
        return bool(header) and secrets.compare_digest(header or "", self._auth_header)

    # -- request handling (shared by both servers) ---------------------------------------------------
    def receive(self, method: str, target: str, raw_body: str, authorization: str | None) -> Reply:
        """Record one request and decide its answer; the server calls `answered()` once it has replied."""
        state = self._state
        parts = urlsplit(target)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        form = dict(parse_qsl(raw_body, keep_blank_values=True))
        authorized = self._authorized(authorization)
        with state.lock:
            state.requests.append(RecordedRequest(method, parts.path, query, form, authorized, time.time()))
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
            failure = state.failures.popleft() if state.failures else None
        reply = self._answer(method, parts.path, query, form, authorized, failure)
        if state.latency:
            reply = replace(reply, delay=reply.delay + state.latency)
        return reply

    def answered(self) -> None:
        with self._state.lock:
            self._state.in_flight -= 1

    def _answer(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        form: dict[str, str],
        authorized: bool,
        failure: Failure | None,
    ) -> Reply:
        if path == "/_stats":
            return _json(200, self.stats())
        if path == "/_posts":  # for tests in another process: when each message request arrived, and for whom
            posts = [[r.at, r.form.get("To", "")] for r in self.requests if r.method == "POST"]
            return _json(200, {"posts": posts})
        match = MESSAGES_PATH.match(path)
        if match is None:
            return _json(404, {"code": 20404, "message": "Not found", "status": 404})
        if not authorized or match["sid"] != self.account_sid:
            return _json(401, {"code": 20003, "message": "Authenticate", "status": 401})
        if failure is not None:
            return _failure_reply(failure)
        if method == "POST":
            return _json(*self._create(form))
        return _json(*self._list(query))


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, json.dumps(body).encode(), headers or {})


def _failure_reply(failure: Failure) -> Reply:
    if failure.drop:
        return Reply(delay=failure.hang, drop=True)
    if failure.rfc9457:
        body: dict[str, Any] = {
            "type": f"https://www.twilio.com/docs/errors/{failure.code}",
            "title": failure.message,
            "status": failure.status,
            "code": failure.code,
        }
    else:
        body = {"message": failure.message, "status": failure.status}
        if failure.code is not None:
            body["code"] = failure.code
    headers = {"Retry-After": failure.retry_after} if failure.retry_after else {}
    return replace(_json(failure.status, body, headers), delay=failure.hang)


def _make_handler(fake: FakeTwilio) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's pooled session expects
        disable_nagle_algorithm = True  # headers and body go out as separate writes; no 40 ms ACK stalls

        def log_message(self, format: str, *args: Any) -> None:
            pass  # tests stay quiet; every request is in fake.requests

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode("utf-8") if length else ""
            reply = fake.receive(method, self.path, raw, self.headers.get("Authorization"))
            try:
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.drop:
                    # Shut the socket so the client sees the connection die mid-request.
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply.body)))
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(reply.body)
            finally:
                fake.answered()

    return Handler


class _FastHttp(asyncio.Protocol):
    """The same fake on a bare asyncio protocol with httptools' C parser (it comes with uvicorn[standard]):
    one event-loop thread and a few dozen microseconds per request, so that on a small machine a benchmark
    measures our fan-out rather than the fake. HTTP/1.1 keep-alive, one request at a time per connection (the
    SDK's clients do not pipeline)."""

    def __init__(self, fake: FakeTwilio, loop: asyncio.AbstractEventLoop) -> None:
        import httptools

        self._fake, self._loop = fake, loop
        self._parser = httptools.HttpRequestParser(self)
        self._error = httptools.HttpParserError
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._auth: str | None = None
        self._body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._fake._transports.add(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fake._transports.discard(self._transport)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except self._error:
            if self._transport is not None:
                self._transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                self._transport.close()

    # httptools' callbacks
    def on_message_begin(self) -> None:
        self._url, self._auth, self._body = b"", None, []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"authorization":
            self._auth = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        method = self._parser.get_method().decode()
        keep_alive = self._parser.should_keep_alive()
        raw = b"".join(self._body).decode("utf-8")
        reply = self._fake.receive(method, self._url.decode("latin-1"), raw, self._auth)
        if reply.delay:
            self._loop.call_later(reply.delay, self._respond, reply, keep_alive)
        else:
            self._respond(reply, keep_alive)

    def _respond(self, reply: Reply, keep_alive: bool) -> None:
        transport = self._transport
        try:
            if transport is None or transport.is_closing():
                return
            if reply.drop:
                transport.abort()  # the client sees the connection die mid-request
                return
            lines = [
                f"HTTP/1.1 {reply.status} {_reason(reply.status)}",
                "Content-Type: application/json",
                f"Content-Length: {len(reply.body)}",
                *(f"{k}: {v}" for k, v in reply.headers.items()),
                "Connection: keep-alive" if keep_alive else "Connection: close",
            ]
            transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + reply.body)
            if not keep_alive:
                transport.close()
        finally:
            self._fake.answered()


@lru_cache(maxsize=64)
def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def query_of(url: str) -> dict[str, list[str]]:
    """The query of `url` as lists (to read our delivery id back out of a StatusCallback)."""
    return parse_qs(urlsplit(url).query)

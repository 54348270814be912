"""The Twilio adapter: send SMS through an injected `twilio.rest.Client`, map its errors, list sent messages.

It never retries by itself: a transient failure raises `ChannelUnavailable` (the dispatcher retries the
delivery with backoff) and a permanent one raises `MessageRejected` (the delivery is marked FAILED).
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import logging
import os
import threading
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any
from urllib.parse import quote_plus, urlencode, urlsplit

import aiohttp
import requests
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from channels.base import (
    Channel,
    ChannelError,
    ChannelLimits,
    ChannelUnavailable,
    InboundEvent,
    MessageRejected,
    OutboundMessage,
    Outcome,
    Proceed,
    RateBucket,
    Renderer,
    SendResult,
    stopped_result,
    window_safe,
)
from channels.sms.codes import AUTH_CODES, FILTERED_CODES, SUPPRESS_CODES, TRANSIENT_CODES
from channels.sms.inbound import DELIVERY_PARAM, parse_inbound
from channels.sms.render import DEFAULT_PRICE_PER_SEGMENT
from channels.sms.segments import sms_segments

log = logging.getLogger(__name__)


def mask_number(number: str) -> str:
    """A phone number safe for logs: country prefix and last two digits only ("+6281******90")."""
    if len(number) <= 6:
        return "*" * len(number)
    return number[:5] + "*" * (len(number) - 7) + number[-2:]


class SenderStrategy(StrEnum):
    # Deliveries take the numbers in turn by delivery id: every worker and every retry agree on a message's number.
    ROUND_ROBIN = "round_robin"
    HASH = "hash"  # the same recipient always hears from the same number, so a reply thread stays together


def is_short_code(sender: str) -> bool:
    """A short code is 3 to 8 digits without '+'; anything else (E.164, an alphanumeric id) is limited like a long
    code."""
    return sender.isdigit() and 3 <= len(sender) <= 8


@dataclass(frozen=True, slots=True)
class SenderRates:
    """Requests per second Twilio lets each kind of sender take; each becomes a window-safe token bucket.

    A Messaging Service's throughput is the sum of its senders' rates, and Twilio queues what goes over it (for
    a few hours, then fails it with 30001, queue overflow). The default assumes a short code behind the service
    (and matches the channel's former single limit); set it to the service's real sum (ten long codes: 10),
    or the excess waits in Twilio's queue, where a cancel cannot stop it and a later tsunami warning waits
    behind it."""

    long_code: float = 1.0
    short_code: float = 100.0
    messaging_service: float = 100.0

    def __post_init__(self) -> None:
        if min(self.long_code, self.short_code, self.messaging_service) <= 0:
            raise ValueError("sender rates must be positive")


class TwilioRejected(MessageRejected):
    """Twilio refused this message for good; `suppress` when the number itself can never receive."""

    def __init__(self, message: str, *, status: int | None, code: int | None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.suppress = code in SUPPRESS_CODES


class TwilioUnavailable(ChannelUnavailable):
    """Twilio could not take the message now; `in_doubt` when it may have accepted it before we lost it."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: int | None = None,
        retry_after: float | None = None,
        in_doubt: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = retry_after
        self.in_doubt = in_doubt


def map_twilio_error(exc: BaseException, *, retry_after: float | None = None) -> ChannelError:
    """Classify an exception from the twilio SDK or its HTTP layer as rejected (permanent) or unavailable."""
    if isinstance(exc, TwilioRestException | TwilioServiceException):
        status = int(exc.status) if exc.status is not None else None
        code = int(exc.code) if exc.code is not None else None
        what = f"twilio HTTP {status} code {code}"  # exc.msg may quote the phone number: keep it out
        if code in SUPPRESS_CODES or code in FILTERED_CODES:
            return TwilioRejected(what, status=status, code=code)
        if status == 429 or code in TRANSIENT_CODES or (status is not None and status >= 500):
            return TwilioUnavailable(what, status=status, code=code, retry_after=retry_after)
        if status == 401 or code in AUTH_CODES:
            # A bad or rotated credential says nothing about the message; failing thousands of evacuation
            # orders for good because of it would be worse than retrying until someone fixes the config.
            return TwilioUnavailable(f"{what} (credentials)", status=status, code=code)
        return TwilioRejected(what, status=status, code=code)
    if isinstance(exc, requests.ConnectTimeout):
        return TwilioUnavailable("twilio connect timeout", in_doubt=False)
    if isinstance(exc, requests.ConnectionError) and _never_connected(exc):
        return TwilioUnavailable("twilio unreachable", in_doubt=False)
    if isinstance(exc, requests.RequestException):
        # The request may have reached Twilio: the answer, not the message, was lost.
        return TwilioUnavailable(f"twilio {type(exc).__name__}", in_doubt=True)
    if isinstance(exc, aiohttp.ClientConnectorError) and not isinstance(exc, aiohttp.ClientSSLError):
        return TwilioUnavailable("twilio unreachable", in_doubt=False)
    if isinstance(exc, aiohttp.ClientError | asyncio.TimeoutError):
        return TwilioUnavailable(f"twilio {type(exc).__name__}", in_doubt=True)
    if isinstance(exc, TwilioException):
        return TwilioUnavailable(f"twilio {type(exc).__name__}", in_doubt=True)
    return TwilioUnavailable(f"{type(exc).__name__}", in_doubt=True)


def _never_connected(exc: requests.ConnectionError) -> bool:
    text = repr(exc.args[0]) if exc.args else ""
    return "NewConnectionError" in text or "Connection refused" in text


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(when.tzinfo)).total_seconds())


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop when installed (it comes with uvicorn[standard]): a batch's requests cost less CPU
    in the loop and its sockets; asyncio's own loop otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


@lru_cache(maxsize=256)
def _segments_of(text: str) -> int:
    return sms_segments(text).segments  # a fan-out sends a few texts many times: count each once


@lru_cache(maxsize=1024)
def _quote(value: str) -> str:
    return quote_plus(value)


def form_encode(data: Mapping[str, object]) -> str:
    """`urlencode(data, doseq=True)` for the SDK's form (str values, lists repeat the key), with the quoting of
    repeated values (keys, the alert's text, the service sid) remembered: a fan-out sends one body many times."""
    parts: list[str] = []
    for key, value in data.items():
        name = _quote(str(key))
        if isinstance(value, list | tuple):
            parts += [f"{name}={_quote(str(v))}" for v in value]
        else:
            parts.append(f"{name}={_quote(str(value))}")
    return "&".join(parts)


class TwilioHttp(TwilioHttpClient):  # type: ignore[misc]  # twilio ships no type hints
    """The SDK's HTTP client with a connection pool sized for concurrent sends, quiet logs (no numbers),
    a per-thread Retry-After hint (the SDK's exceptions drop headers) and an optional base URL override
    for a local fake. It never retries by itself: Twilio has no idempotency key, a retried POST can
    duplicate a message."""

    def __init__(self, *, timeout: float = 10.0, pool_size: int = 32, base_url: str = "") -> None:
        super().__init__(pool_connections=True, timeout=timeout, logger=log)
        self.base_url = base_url.rstrip("/")
        self._local = threading.local()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        assert self.session is not None
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        """Send one request (to `base_url` when set, keeping path and query) and remember Retry-After."""
        url = rebase(url, self.base_url)
        self._local.retry_after = None
        response = super().request(method, url, params, data, headers, auth, timeout, allow_redirects)
        if response.status_code >= 400:
            self._local.retry_after = parse_retry_after((response.headers or {}).get("Retry-After"))
        return response

    def last_retry_after(self) -> float | None:
        """The Retry-After of this thread's last failed request, if the server sent one."""
        return getattr(self._local, "retry_after", None)

    def log_request(self, kwargs: dict[str, Any]) -> None:
        # The SDK logs query params at INFO, and a list by To puts a phone number there.
        log.debug("twilio %s %s", kwargs["method"], urlsplit(kwargs["url"]).path)

    def log_response(self, status_code: int, response: Any) -> None:
        log.debug("twilio response %s", status_code)


@lru_cache(maxsize=64)
def basic_auth(username: str, password: str) -> str:
    """The Basic Authorization header value (one account's credentials, computed once)."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@lru_cache(maxsize=256)
def rebase(url: str, base_url: str) -> str:
    """`url` with its scheme and host replaced by `base_url` (path and query kept); unchanged when no base."""
    if not base_url:
        return url
    parts = urlsplit(url)
    return base_url + parts.path + (f"?{parts.query}" if parts.query else "")


async def create_returning_sid(client: Client, kwargs: Mapping[str, Any]) -> str:
    """`client.messages.create_async(**kwargs).sid` without building the MessageInstance: a fan-out needs only
    the sid, and the instance parses three RFC 2822 dates per message (a tenth of the CPU of a send).

    Uses the SDK's generated `_create_async` helper (the request `create_async` makes, returning the parsed
    payload); an SDK without it gets the public `create_async`."""
    messages = client.messages
    create = getattr(messages, "_create_async", None)
    if create is None:
        return str((await messages.create_async(**kwargs)).sid)
    payload, _status, _headers = await create(**kwargs)
    return str(payload["sid"])


_ASYNC_RETRY_AFTER: contextvars.ContextVar[float | None] = contextvars.ContextVar("twilio_retry_after", default=None)


class AsyncTwilioHttp(AsyncTwilioHttpClient):  # type: ignore[misc]  # twilio ships no type hints
    """The SDK's aiohttp client for `create_async`: one pooled session of at most `pool_size` connections,
    quiet logs, the Retry-After of a failed request kept per asyncio task, an optional base URL for a
    local fake. Never retries by itself (no idempotency key at Twilio). Build it inside a running loop."""

    def __init__(self, *, timeout: float = 10.0, pool_size: int = 32, base_url: str = "") -> None:
        super().__init__(pool_connections=False, timeout=timeout, logger=log)
        self.base_url = base_url.rstrip("/")
        # No cookie jar (Twilio sets no cookies we need) and no compression negotiation: less work per request.
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=pool_size, limit_per_host=pool_size),
            timeout=aiohttp.ClientTimeout(total=timeout),
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            skip_auto_headers=("Accept-Encoding",),
        )

    async def request(
        self,
        method: str,
        url: str,
        params: Mapping[str, str | int | float] | None = None,  # query parameters, as twilio passes them
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        """Send one request (to `base_url` when set, keeping path and query) and remember Retry-After."""
        url = rebase(url, self.base_url)
        headers = dict(headers or {})
        if auth is not None:  # aiohttp deprecates its `auth` argument (a warning per request): send the header
            headers["Authorization"] = basic_auth(*auth)
        body: bytes | None = None
        if data:  # encoded like the synchronous client (lists repeat the key); aiohttp's FormData costs more CPU
            body = form_encode(data).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.log_request({"method": method, "url": url})
        # Without a per-request timeout the session's own applies (None would mean no timeout at all).
        extra: dict[str, Any] = {"timeout": aiohttp.ClientTimeout(total=timeout)} if timeout else {}
        async with self.session.request(
            method.upper(), url, params=params, data=body, headers=headers, allow_redirects=allow_redirects, **extra
        ) as raw:
            response = Response(raw.status, (await raw.read()).decode("utf-8", "replace"), raw.headers)
        self.log_response(response.status_code, response)
        if response.status_code >= 400:
            _ASYNC_RETRY_AFTER.set(parse_retry_after((response.headers or {}).get("Retry-After")))
        return response

    def log_request(self, kwargs: dict[str, Any]) -> None:
        log.debug("twilio %s %s", kwargs["method"], urlsplit(kwargs["url"]).path)

    def log_response(self, status_code: int, response: Any) -> None:
        log.debug("twilio response %s", status_code)


def build_client(
    account_sid: str, auth_token: str, *, timeout: float = 10.0, pool_size: int = 32, api_base_url: str = ""
) -> Client:
    """A twilio Client on `TwilioHttp`; `api_base_url` points it at a local fake (tests only)."""
    http = TwilioHttp(timeout=timeout, pool_size=pool_size, base_url=api_base_url)
    return Client(account_sid, auth_token, http_client=http)


@dataclass(frozen=True, slots=True)
class SentMessage:
    """One message Twilio holds for a number: enough to tell whether a delivery was already sent."""

    sid: str
    to: str
    sender: str | None
    body: str
    status: str
    date_created: datetime | None
    date_sent: datetime | None
    error_code: int | None
    num_segments: int | None


@dataclass(frozen=True, slots=True)
class TwilioConfig:
    """What the registry needs to build the live SMS channel; the caller fills it from TwilioSettings."""

    account_sid: str
    auth_token: str
    messaging_service_sid: str = ""
    sender_numbers: tuple[str, ...] = ()
    sender_strategy: SenderStrategy = SenderStrategy.HASH
    status_callback_url: str = ""
    max_concurrency: int = 32
    timeout_s: float = 10.0
    rate_per_second: float = 2000.0  # the account cap, over every sender
    long_code_rate: float = 1.0
    short_code_rate: float = 100.0
    messaging_service_rate: float = 100.0
    max_segments: int | None = None  # one budget for every alert; None: by severity
    severity_segments: tuple[tuple[str, int], ...] | None = None  # None: DEFAULT_SEVERITY_BUDGETS
    price_per_segment: Decimal = DEFAULT_PRICE_PER_SEGMENT
    currency: str = "USD"
    api_base_url: str = ""  # only to reach a local fake in tests


class TwilioSms(Channel):
    """Sends each SMS through Twilio (a Messaging Service or a pool of numbers), `send_many` concurrently.

    Retries: never itself; `ChannelUnavailable` (429, 5xx, 30003/30008, timeouts) lets the dispatcher retry
    with backoff, `MessageRejected` (bad or stopped numbers, other 4xx) marks the delivery FAILED.
    Limits: `limits` is the account cap; each sender number (or the Messaging Service) has its own bucket too.
    """

    def __init__(
        self,
        renderer: Renderer,
        *,
        client: Client,
        messaging_service_sid: str = "",
        sender_numbers: Sequence[str] = (),
        sender_strategy: SenderStrategy = SenderStrategy.HASH,
        status_callback_url: str = "",
        max_concurrency: int = 32,
        limits: ChannelLimits | None = None,
        sender_rates: SenderRates | None = None,
        account_sid: str = "",
    ) -> None:
        """`limits` is the account cap (already window safe); `account_sid` names its bucket (default: the
        client's account).

        Raises: ValueError when neither a Messaging Service nor a sender number is given.
        """
        super().__init__(renderer)
        if not messaging_service_sid and not sender_numbers:
            raise ValueError("TwilioSms needs a messaging_service_sid or at least one sender number")
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self._client = client
        self._service_sid = messaging_service_sid
        self._senders = tuple(sender_numbers)
        self._strategy = SenderStrategy(sender_strategy)
        self._callback = status_callback_url
        self._max_concurrency = max_concurrency
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_pid = 0
        self._async: Client | None = None
        self._timeout = float(getattr(getattr(client, "http_client", None), "timeout", None) or 10.0)
        if limits is not None:
            self.limits = limits
        rates = sender_rates or SenderRates()
        self._long_code, self._short_code = window_safe(rates.long_code), window_safe(rates.short_code)
        self._service_rate = window_safe(rates.messaging_service)
        account = account_sid or str(getattr(client, "account_sid", None) or "")
        self._account_key = f"sms:account:{account}"

    def sender_for(self, message: OutboundMessage) -> str | None:
        """The From number for `message`, or None when the Messaging Service picks one; the same answer every
        time it is asked (the rate buckets and the request must name the same number)."""
        if not self._senders:
            return None
        if self._strategy is SenderStrategy.ROUND_ROBIN and message.reference.isdigit():
            return self._senders[int(message.reference) % len(self._senders)]
        # crc32, not hash(): Python salts str hashes per process, and every worker must agree.
        key = message.recipient if self._strategy is SenderStrategy.HASH else message.reference
        return self._senders[zlib.crc32(key.encode()) % len(self._senders)]

    def account_bucket(self) -> RateBucket:
        """The account's cap, which every message draws on whatever its sender."""
        return RateBucket(self._account_key, self.limits.rate_per_second, self.limits.burst)

    def rate_buckets(self, message: OutboundMessage) -> tuple[list[RateBucket], int]:
        """The account cap, plus the sender number's own rate (long code or short code) or, when the Messaging
        Service picks the number, the service's. Twilio counts a sender's throughput in segments, so a message
        costs its segments (in every bucket: the account cap, counted per request at Twilio, is then
        under-used for long messages rather than ever exceeded)."""
        sender = self.sender_for(message)
        if sender:
            rate, burst = self._short_code if is_short_code(sender) else self._long_code
            own = RateBucket(f"sms:sender:{sender}", rate, burst)
        else:
            own = RateBucket(f"sms:service:{self._service_sid}", *self._service_rate)
        return [self.account_bucket(), own], _segments_of(message.text)

    def retry_after_buckets(self, message: OutboundMessage) -> list[RateBucket]:
        """Twilio's 429 (20429, too many requests) is about the account's request rate, not the number: Twilio
        queues a sender's excess instead of refusing it (failing it later with 30001). So a Retry-After blocks
        the account bucket, which every message takes from anyway; blocking the sender's too would add nothing."""
        return [self.account_bucket()]

    def status_callback_for(self, reference: str) -> str | None:
        """The StatusCallback URL carrying our delivery id, or None when no callback is configured."""
        if not self._callback:
            return None
        joiner = "&" if "?" in self._callback else "?"
        return f"{self._callback}{joiner}{urlencode({DELIVERY_PARAM: reference})}"

    def _create_kwargs(self, message: OutboundMessage) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"to": message.recipient, "body": message.text, "smart_encoded": False}
        # smart_encoded=False: the renderer already normalised the text, so the previewed segments are exact.
        sender = self.sender_for(message)
        if sender:
            kwargs["from_"] = sender
        if self._service_sid:
            kwargs["messaging_service_sid"] = self._service_sid
        callback = self.status_callback_for(message.reference)
        if callback:
            kwargs["status_callback"] = callback
        return kwargs

    def _refused(self, message: OutboundMessage, exc: Exception, retry_after: float | None) -> ChannelError:
        error = map_twilio_error(exc, retry_after=retry_after)
        log.info("twilio refused delivery %s to %s: %s", message.reference, mask_number(message.recipient), error)
        return error

    def send(self, message: OutboundMessage) -> str:
        """Create one Twilio message and return its SID. Never retries by itself.

        Raises: MessageRejected (TwilioRejected), ChannelUnavailable (TwilioUnavailable).
        """
        try:
            sent = self._client.messages.create(**self._create_kwargs(message))
        except Exception as exc:
            raise self._refused(message, exc, self._retry_after_hint()) from exc
        return str(sent.sid)

    def send_many(self, messages: Sequence[OutboundMessage], *, proceed: Proceed | None = None) -> list[SendResult]:
        """Send a batch with twilio's async client, at most `max_concurrency` requests in flight; results
        keep the input order. A single message goes through the synchronous client. `proceed` is asked before
        each request: once it says False, only requests already in flight complete and the rest come back
        `stopped` (the pipeline never drains between checks)."""
        if not messages:
            return []
        if len(messages) == 1:
            if proceed is not None and not proceed():
                return [stopped_result(messages[0])]
            return [self._send_result(messages[0])]
        loop = self._event_loop()
        return loop.run_until_complete(self._send_all(messages, proceed))

    async def _send_all(self, messages: Sequence[OutboundMessage], proceed: Proceed | None) -> list[SendResult]:
        client = await self._async_client()
        results: list[SendResult | None] = [None] * len(messages)
        todo = iter(enumerate(messages))  # shared: each sender takes the next message when it is free

        async def sender() -> None:
            for index, message in todo:
                if proceed is not None and not proceed():
                    results[index] = stopped_result(message)
                    continue
                _ASYNC_RETRY_AFTER.set(None)
                try:
                    sid = await create_returning_sid(client, self._create_kwargs(message))
                except Exception as exc:
                    error = self._refused(message, exc, _ASYNC_RETRY_AFTER.get())
                    results[index] = self._result_of_error(message, error)
                else:
                    results[index] = SendResult(message.reference, Outcome.SENT, provider_id=sid)

        # At most max_concurrency requests in flight: that many senders, not a task per message behind a semaphore.
        await asyncio.gather(*(sender() for _ in range(min(self._max_concurrency, len(messages)))))
        return [
            r if r is not None else SendResult(m.reference, Outcome.RETRY, error="not sent")
            for r, m in zip(results, messages, strict=True)
        ]

    def prepare(self) -> None:
        """Import the SDK's lazily loaded message API and build this process's async client now, so the first
        batch does not pay for it."""
        if self._client is not None:
            self._client.api.v2010.account.messages  # noqa: B018 - the property imports the modules
            self._event_loop().run_until_complete(self._async_client())

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        # One loop (and one aiohttp connection pool) per process, built lazily: a Celery prefork child must not
        # inherit its parent's sockets.
        with self._lock:
            if self._loop is None or self._loop_pid != os.getpid():
                self._loop, self._loop_pid, self._async = new_event_loop(), os.getpid(), None
            return self._loop

    async def _async_client(self) -> Client:
        if self._async is None:
            http = AsyncTwilioHttp(
                timeout=self._timeout,
                pool_size=self._max_concurrency,
                base_url=getattr(self._client.http_client, "base_url", ""),
            )
            self._async = Client(self._client.username, self._client.password, http_client=http)
        return self._async

    def find_sent(self, to: str, since: datetime, *, page_size: int = 100) -> list[SentMessage]:
        """Every message Twilio holds for `to` sent at or after `since`, newest first, across all pages.

        Raises: MessageRejected, ChannelUnavailable.
        """
        try:
            found = self._client.messages.list(to=to, date_sent_after=since, page_size=page_size)
        except Exception as exc:
            raise map_twilio_error(exc, retry_after=self._retry_after_hint()) from exc
        return [
            SentMessage(
                sid=str(m.sid),
                to=str(m.to),
                sender=m.from_,
                body=m.body or "",
                status=str(m.status),
                date_created=m.date_created,
                date_sent=m.date_sent,
                error_code=int(m.error_code) if m.error_code is not None else None,
                num_segments=int(m.num_segments) if m.num_segments not in (None, "") else None,
            )
            for m in found
        ]

    def reconcile(self, message: OutboundMessage, *, since: datetime) -> str | None:
        """The sid of a message Twilio already holds for this number with this exact body since `since`.
        Twilio has no idempotency key, so its message list is the only witness; if it cannot be read, None."""
        try:
            found = self.find_sent(message.recipient, since)
        except ChannelError as exc:
            log.warning("delivery %s: could not reconcile with Twilio (%s); sending again", message.reference, exc)
            return None
        return next((m.sid for m in found if m.body == message.text), None)

    def parse_inbound(self, payload: Mapping[str, str]) -> InboundEvent | None:
        """An inbound SMS webhook form as an event; None for anything else (e.g. a status callback)."""
        return parse_inbound(payload)

    def close(self) -> None:
        """Close the async connection pool and its loop; the channel builds new ones if used again."""
        with self._lock:
            loop, client, self._loop, self._async = self._loop, self._async, None, None
            mine = self._loop_pid == os.getpid()
        if loop is None or not mine:
            return
        if client is not None:
            loop.run_until_complete(client.http_client.close())
        loop.close()

    def _send_result(self, message: OutboundMessage) -> SendResult:
        try:
            sid = self.send(message)
        except ChannelError as exc:
            return self._result_of_error(message, exc)
        return SendResult(message.reference, Outcome.SENT, provider_id=sid)

    @staticmethod
    def _result_of_error(message: OutboundMessage, exc: ChannelError) -> SendResult:
        if isinstance(exc, MessageRejected):
            return SendResult(message.reference, Outcome.FAILED, error=str(exc))
        return SendResult(
            message.reference,
            Outcome.RETRY,
            error=str(exc),
            retry_after=getattr(exc, "retry_after", None),
            in_doubt=bool(getattr(exc, "in_doubt", False)),
        )

    def _retry_after_hint(self) -> float | None:
        http = getattr(self._client, "http_client", None)
        hint = getattr(http, "last_retry_after", None)
        return hint() if callable(hint) else None

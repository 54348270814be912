"""The twilio SDK's HTTP layer as every Twilio channel uses it: pooled sync and async clients that never retry
(Twilio has no idempotency key), a base URL for a local fake, the Retry-After the SDK's exceptions drop, quiet logs
(no phone numbers) and one map from the SDK's errors to rejected (permanent) or unavailable (retry later).
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import Any, Protocol
from urllib.parse import quote_plus, urlsplit

import aiohttp
import requests
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from channels.base import ChannelError, ChannelUnavailable, MessageRejected
from channels.twilio.codes import AUTH_CODES, FILTERED_CODES, SUPPRESS_CODES, TRANSIENT_CODES

log = logging.getLogger(__name__)

# The query parameter of our StatusCallback URL that carries our delivery id.
DELIVERY_PARAM = "delivery"


def mask_number(number: str) -> str:
    """A phone number safe for logs: country prefix and last two digits only ("+6281******90")."""
    if len(number) <= 6:
        return "*" * len(number)
    return number[:5] + "*" * (len(number) - 7) + number[-2:]


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


class QuietLogs:
    """The SDK logs query parameters at INFO, and a list by To puts a phone number there: log the path only."""

    def log_request(self, kwargs: dict[str, Any]) -> None:
        log.debug("twilio %s %s", kwargs["method"], urlsplit(kwargs["url"]).path)

    def log_response(self, status_code: int, response: Any) -> None:
        log.debug("twilio response %s", status_code)


class TwilioHttp(QuietLogs, TwilioHttpClient):  # type: ignore[misc]  # twilio ships no type hints
    """The SDK's synchronous client for people and tools (tests, benchmarks, the CLI reading Twilio): a pooled
    session, quiet logs, an optional base URL for a local fake, never a retry. The channels send and list through
    `AsyncTwilioHttp` only (one request path); they take the credentials, timeout and base URL from this one."""

    def __init__(self, *, timeout: float = 10.0, pool_size: int = 32, base_url: str = "") -> None:
        super().__init__(pool_connections=True, timeout=timeout, logger=log)
        self.base_url = base_url.rstrip("/")
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        assert self.session is not None
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        """Send one request, to `base_url` when set (path and query kept)."""
        return super().request(method, rebase(url, self.base_url), *args, **kwargs)


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


RETRY_AFTER: contextvars.ContextVar[float | None] = contextvars.ContextVar("twilio_retry_after", default=None)


class AsyncTwilioHttp(QuietLogs, AsyncTwilioHttpClient):  # type: ignore[misc]  # twilio ships no type hints
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
            RETRY_AFTER.set(parse_retry_after((response.headers or {}).get("Retry-After")))
        return response


def build_client(
    account_sid: str, auth_token: str, *, timeout: float = 10.0, pool_size: int = 32, api_base_url: str = ""
) -> Client:
    """A twilio Client on `TwilioHttp`; `api_base_url` points it at a local fake (tests only)."""
    http = TwilioHttp(timeout=timeout, pool_size=pool_size, base_url=api_base_url)
    return Client(account_sid, auth_token, http_client=http)


class ClientConfig(Protocol):
    """What a Twilio channel's config says about its client (SMS's TwilioConfig, WhatsApp's WhatsAppConfig)."""

    @property
    def account_sid(self) -> str: ...
    @property
    def auth_token(self) -> str: ...
    @property
    def timeout_s(self) -> float: ...
    @property
    def max_concurrency(self) -> int: ...
    @property
    def api_base_url(self) -> str: ...


def client_for(config: ClientConfig) -> Client:
    """The twilio Client of a channel's config: its account, timeout, pool size and (tests only) base URL."""
    return build_client(
        config.account_sid,
        config.auth_token,
        timeout=config.timeout_s,
        pool_size=config.max_concurrency,
        api_base_url=config.api_base_url,
    )


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

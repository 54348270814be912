"""The one request path of every Twilio channel (SMS, WhatsApp): messages created with the SDK's async client,
at most `max_concurrency` in flight, errors mapped once, the message list read back for in-doubt sends.

A channel subclass says only what differs: the create request for a message (`create_kwargs`), its rate buckets
and how a message Twilio holds is recognised as ours (`matches`). Retries: never here; `ChannelUnavailable`
(429, 5xx, timeouts, transient codes) lets the dispatcher retry with backoff, `MessageRejected` marks FAILED.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from abc import abstractmethod
from collections.abc import Coroutine, Sequence
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlencode

from twilio.rest import Client

from channels.base import (
    Channel,
    ChannelError,
    ChannelUnavailable,
    MessageRejected,
    OutboundMessage,
    Outcome,
    Proceed,
    Renderer,
    SendResult,
    stopped_result,
)
from channels.twilio.client import (
    DELIVERY_PARAM,
    RETRY_AFTER,
    AsyncTwilioHttp,
    SentMessage,
    create_returning_sid,
    map_twilio_error,
    mask_number,
    new_event_loop,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


class TwilioChannel(Channel):
    """A channel whose messages are Twilio Messages: `send` and `send_many` share one async request path."""

    def __init__(
        self, renderer: Renderer, *, client: Client, status_callback_url: str = "", max_concurrency: int = 32
    ) -> None:
        """`client` gives the credentials, timeout and base URL (a local fake in tests) of the async client.

        Raises: ValueError for a concurrency below 1.
        """
        super().__init__(renderer)
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self._client = client
        self._callback = status_callback_url
        self._max_concurrency = max_concurrency
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_pid = 0
        self._async: Client | None = None
        self._timeout = float(getattr(getattr(client, "http_client", None), "timeout", None) or 10.0)

    @abstractmethod
    def create_kwargs(self, message: OutboundMessage) -> dict[str, Any]:
        """The arguments of `messages.create` for `message` (to, from or service, body or template).

        Raises: MessageRejected when the message cannot be sent at all.
        """

    def matches(self, message: OutboundMessage, sent: SentMessage) -> bool:
        """True when `sent`, a message Twilio holds for the recipient, is `message` (the same text)."""
        return sent.body == message.text

    def status_callback_for(self, reference: str) -> str | None:
        """The StatusCallback URL carrying our delivery id, or None when no callback is configured."""
        if not self._callback:
            return None
        joiner = "&" if "?" in self._callback else "?"
        return f"{self._callback}{joiner}{urlencode({DELIVERY_PARAM: reference})}"

    def send(self, message: OutboundMessage) -> str:
        """Create one Twilio message and return its SID. Never retries by itself.

        Raises: MessageRejected (TwilioRejected), ChannelUnavailable (TwilioUnavailable).
        """
        return self._run(self._create_one(message))

    def send_many(self, messages: Sequence[OutboundMessage], *, proceed: Proceed | None = None) -> list[SendResult]:
        """Send a batch, at most `max_concurrency` requests in flight; results keep the input order. `proceed` is
        asked before each request: once it says False, only requests already in flight complete and the rest come
        back `stopped` (the pipeline never drains between checks)."""
        if not messages:
            return []
        return self._run(self._send_all(messages, proceed))

    async def _create_one(self, message: OutboundMessage) -> str:
        kwargs = self.create_kwargs(message)  # a message that cannot be sent raises MessageRejected here
        client = await self._async_client()
        RETRY_AFTER.set(None)
        try:
            return await create_returning_sid(client, kwargs)
        except Exception as exc:
            error = map_twilio_error(exc, retry_after=RETRY_AFTER.get())
            log.info("twilio refused delivery %s to %s: %s", message.reference, mask_number(message.recipient), error)
            raise error from exc

    async def _send_all(self, messages: Sequence[OutboundMessage], proceed: Proceed | None) -> list[SendResult]:
        results: list[SendResult | None] = [None] * len(messages)
        todo = iter(enumerate(messages))  # shared: each sender takes the next message when it is free

        async def sender() -> None:
            for index, message in todo:
                if proceed is not None and not proceed():
                    results[index] = stopped_result(message)
                    continue
                try:
                    sid = await self._create_one(message)
                except ChannelError as exc:
                    results[index] = result_of_error(message, exc)
                else:
                    results[index] = SendResult(message.reference, Outcome.SENT, provider_id=sid)

        # At most max_concurrency requests in flight: that many senders, not a task per message behind a semaphore.
        await asyncio.gather(*(sender() for _ in range(min(self._max_concurrency, len(messages)))))
        return [
            r if r is not None else SendResult(m.reference, Outcome.RETRY, error="not sent")
            for r, m in zip(results, messages, strict=True)
        ]

    def find_sent(self, to: str, since: datetime, *, page_size: int = 100) -> list[SentMessage]:
        """Every message Twilio holds for `to` sent at or after `since`, newest first, across all pages.

        Raises: MessageRejected, ChannelUnavailable.
        """
        return self._run(self._list(to, since, page_size))

    async def _list(self, to: str, since: datetime, page_size: int) -> list[SentMessage]:
        client = await self._async_client()
        RETRY_AFTER.set(None)
        try:
            found = await client.messages.list_async(to=to, date_sent_after=since, page_size=page_size)
        except Exception as exc:
            raise map_twilio_error(exc, retry_after=RETRY_AFTER.get()) from exc
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
        """The sid of a message Twilio already holds for this recipient that `matches` this one since `since`.
        Twilio has no idempotency key, so its message list is the only witness; if it cannot be read, None."""
        try:
            found = self.find_sent(self.address_of(message), since)
        except ChannelError as exc:
            log.warning("delivery %s: could not reconcile with Twilio (%s); sending again", message.reference, exc)
            return None
        return next((m.sid for m in found if self.matches(message, m)), None)

    def address_of(self, message: OutboundMessage) -> str:
        """The To address Twilio holds the message under (the recipient's number as given)."""
        return message.recipient

    def prepare(self) -> None:
        """Import the SDK's lazily loaded message API and build this process's async client now, so the first
        batch does not pay for it."""
        self._client.api.v2010.account.messages  # noqa: B018 - the property imports the modules
        self._run(self._async_client())

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

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._event_loop().run_until_complete(coro)

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


def result_of_error(message: OutboundMessage, exc: ChannelError) -> SendResult:
    """A send's error as its result: FAILED when rejected for good, else RETRY (with the provider's wait and
    whether the request may have reached it)."""
    if isinstance(exc, MessageRejected):
        return SendResult(message.reference, Outcome.FAILED, error=str(exc))
    return SendResult(
        message.reference,
        Outcome.RETRY,
        error=str(exc),
        retry_after=getattr(exc, "retry_after", None) if isinstance(exc, ChannelUnavailable) else None,
        in_doubt=bool(getattr(exc, "in_doubt", False)),
    )

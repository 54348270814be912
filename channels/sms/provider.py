"""The SMS adapter: Twilio messages from a Messaging Service or a pool of numbers, each number within its rate.

The request path (async client, error map, message list) is `channels.twilio.channel.TwilioChannel`, shared with
WhatsApp. It never retries by itself: a transient failure is `ChannelUnavailable` (the dispatcher retries the
delivery with backoff) and a permanent one `MessageRejected` (the delivery is marked FAILED).
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from typing import Any

from twilio.rest import Client

from channels.base import ChannelLimits, InboundEvent, OutboundMessage, RateBucket, Renderer, window_safe
from channels.sms.inbound import parse_inbound
from channels.sms.render import DEFAULT_PRICE_PER_SEGMENT
from channels.sms.segments import sms_segments
from channels.twilio.channel import TwilioChannel

log = logging.getLogger(__name__)


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


@lru_cache(maxsize=256)
def _segments_of(text: str) -> int:
    return sms_segments(text).segments  # a fan-out sends a few texts many times: count each once


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


def account_bucket_key(account_sid: str) -> str:
    """The bucket of a Twilio account's request cap, which every SMS and WhatsApp message of it draws on."""
    return f"sms:account:{account_sid}"


class TwilioSms(TwilioChannel):
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
        super().__init__(
            renderer, client=client, status_callback_url=status_callback_url, max_concurrency=max_concurrency
        )
        if not messaging_service_sid and not sender_numbers:
            raise ValueError("TwilioSms needs a messaging_service_sid or at least one sender number")
        self._service_sid = messaging_service_sid
        self._senders = tuple(sender_numbers)
        self._strategy = SenderStrategy(sender_strategy)
        if limits is not None:
            self.limits = limits
        rates = sender_rates or SenderRates()
        self._long_code, self._short_code = window_safe(rates.long_code), window_safe(rates.short_code)
        self._service_rate = window_safe(rates.messaging_service)
        self._account_key = account_bucket_key(account_sid or str(getattr(client, "account_sid", None) or ""))

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

    def create_kwargs(self, message: OutboundMessage) -> dict[str, Any]:
        """To, the body (smart encoding off), the From number or the Messaging Service, the status callback."""
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

    def parse_inbound(self, payload: Mapping[str, str]) -> InboundEvent | None:
        """An inbound SMS webhook form as an event; None for anything else (e.g. a status callback)."""
        return parse_inbound(payload)

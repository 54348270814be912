"""The channel interface: render plain alert data, send batches, parse inbound traffic.

Adapters never touch the database or read settings; configuration is passed in when built.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import ClassVar

log = logging.getLogger(__name__)

# The forced mark every non-Actual message carries, per language, in every channel.
STATUS_MARKS: dict[str, dict[str, str]] = {
    "Exercise": {"id": "LATIHAN", "en": "EXERCISE"},
    "Test": {"id": "TEST/UJI COBA", "en": "TEST"},
    "System": {"id": "SISTEM", "en": "SYSTEM"},
    "Draft": {"id": "DRAF", "en": "DRAFT"},
}


def status_mark(status: str, language: str) -> str | None:
    """The mark a message of this CAP status must carry, or None for Actual alerts."""
    marks = STATUS_MARKS.get(status)
    if marks is None:
        return None
    return marks.get(language.split("-")[0], marks["en"])


class Audience(StrEnum):
    SUBSCRIBERS = "subscribers"  # one message per subscriber
    PUBLIC = "public"  # one public post or page per alert


@dataclass(frozen=True, slots=True)
class InfoData:
    language: str
    event: str
    category: str
    urgency: str
    severity: str
    certainty: str
    headline: str
    description: str
    instruction: str
    contact: str | None = None


@dataclass(frozen=True, slots=True)
class AlertData:
    """What a channel knows about an alert: plain values, never an ORM object."""

    id: int
    identifier: str
    sender: str
    status: str
    msg_type: str
    sent: datetime | None
    expires: datetime | None
    area_desc: str
    public_url: str
    infos: tuple[InfoData, ...]
    references: str | None = None
    # An Update that corrects the alert it references (labelled KOREKSI / CORRECTION, not PEMBARUAN / UPDATE).
    correction: bool = False
    short_url: str | None = None  # a shorter link to public_url for SMS; public_url when None
    sms_max_segments: int | None = None  # the operator's SMS budget (1-3); the renderer default when None
    # Kemendagri codes the alert targets; channels with per-jurisdiction accounts pick one from them.
    area_codes: tuple[str, ...] = ()
    # The area map as PNG, for channels that can show an image; None when no map was drawn.
    map_png: bytes | None = None
    # For Update/Cancel/Error: the original alert's provider ids by channel name (e.g. {"social": "1234"}).
    original_provider_ids: Mapping[str, str] = field(default_factory=dict)
    # The alert's verification code ("Kode: 7KQ2MX") and the page that checks it; every message carries them.
    verify_code: str | None = None
    verify_url: str | None = None
    # For an Update or correction: the version it replaces (its info blocks and area), so messages can say
    # what changed; empty for a first alert.
    previous_infos: tuple[InfoData, ...] = ()
    previous_area_desc: str | None = None

    @property
    def kind(self) -> str:
        """What the message is for its labels: "Alert", "Update", "Cancel" or "Correction" (a correcting
        Update, or a CAP Error)."""
        return "Correction" if self.correction or self.msg_type == "Error" else self.msg_type

    def info_for(self, language: str) -> InfoData:
        """The info block in `language` (matching on the primary subtag), else the first one."""
        want = language.split("-")[0].lower()
        for info in self.infos:
            if info.language.split("-")[0].lower() == want:
                return info
        return self.infos[0]

    def previous_info_for(self, language: str) -> InfoData | None:
        """The replaced version's info block in `language` (primary subtag), else None."""
        want = language.split("-")[0].lower()
        for info in self.previous_infos:
            if info.language.split("-")[0].lower() == want:
                return info
        return None


@dataclass(frozen=True, slots=True)
class Recipient:
    key: str  # delivery recipient key: "sub:<id>" or "public"
    address: str  # E.164 number, or "" for public posts
    language: str = "id"


@dataclass(frozen=True, slots=True)
class TemplateRef:
    """A provider's pre-approved template (WhatsApp's Content API) and the values of its numbered variables; the
    message's `text` is that template filled in, exactly as the recipient sees it."""

    key: str  # our name for it: "<hazard>.<language>", e.g. "banjir.id"
    variables: tuple[tuple[str, str], ...]  # ("1", "…"), ("2", "…"), …


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    recipient: str
    text: str
    reference: str  # our delivery id
    language: str = "id"
    # Public posts that follow `text` in order, each a reply to the one before (e.g. an X thread).
    thread: tuple[str, ...] = ()
    # An image for the first post, with its alt text.
    image_png: bytes | None = None
    image_alt: str = ""
    # Provider ids of an earlier post this one quotes or replies to (an update or correction of it).
    quote_of: str | None = None
    reply_to: str | None = None
    # Which of our accounts sends it (an X account's handle, chosen by area); "" means the only account.
    sender: str = ""
    # Sent as this pre-approved template rather than as free text (business-initiated WhatsApp messages).
    template: TemplateRef | None = None


@dataclass(frozen=True, slots=True)
class Preview:
    language: str
    text: str
    details: dict[str, object] = field(default_factory=dict)


class Outcome(StrEnum):
    SENT = "sent"
    FAILED = "failed"
    RETRY = "retry"


@dataclass(frozen=True, slots=True)
class SendResult:
    reference: str
    outcome: Outcome
    provider_id: str | None = None
    error: str | None = None
    # Ids of the posts that followed the first one (a thread); `provider_id` is the first.
    extra_provider_ids: tuple[str, ...] = ()
    # Seconds the provider asked us to wait before retrying (a 429's reset), when it said.
    retry_after: float | None = None
    # RETRY only: the request may have reached the provider (a timeout, a connection lost after sending), so
    # the retry must first look in the provider's message list.
    in_doubt: bool = False
    # RETRY only: never handed to the provider because the caller's `proceed` said stop (the alert was
    # cancelled or expired during the batch).
    stopped: bool = False


# Asked by `send_many` before each message goes to the provider; once it answers False no further message goes.
Proceed = Callable[[], bool]


def stopped_result(message: OutboundMessage) -> SendResult:
    """The result of a message `send_many` did not send because `proceed` said stop."""
    return SendResult(message.reference, Outcome.RETRY, error="stopped before sending", stopped=True)


def while_proceeding(messages: Sequence[OutboundMessage], proceed: Proceed | None) -> Iterator[OutboundMessage]:
    """The messages in turn, `proceed` asked before each (lazily: only when the previous one was sent); none
    after it says False. Pair with `with_stopped`."""
    for m in messages:
        if proceed is not None and not proceed():
            return
        yield m


def with_stopped(results: list[SendResult], messages: Sequence[OutboundMessage]) -> list[SendResult]:
    """The results of the messages sent in turn, then a stopped result for each message after them."""
    return results + [stopped_result(m) for m in messages[len(results) :]]


@dataclass(frozen=True, slots=True)
class ChannelLimits:
    rate_per_second: float
    burst: int
    max_batch: int


@dataclass(frozen=True, slots=True)
class RateBucket:
    """A limit a channel's provider enforces: `rate` requests per second refilling up to `burst`.

    Channels only declare buckets; the dispatcher keeps them (in Redis, shared by every worker)."""

    key: str
    rate: float
    burst: float


@dataclass(frozen=True, slots=True)
class RecipientCap:
    """At most `limit` distinct recipients in any `window_s` seconds (WhatsApp's messaging tier: unique people
    per 24 h). Channels only declare it; the dispatcher keeps it in Redis, shared by every worker."""

    key: str
    limit: int
    window_s: float


def window_safe(limit: float) -> tuple[float, int]:
    """Token-bucket (rate, burst) that never lets more than `limit` requests through in any one-second window.

    A window then holds at most burst + rate × (1 s + jitter) grants, the jitter being the time between taking a
    token and the request reaching the provider, which can bunch requests up. A count is an integer, so that
    sum must stay below limit + 1: a rate of 80 % of the limit with a burst of 5 % (at least 1) leaves room for
    about 19 % of jitter at high rates and 25 % below 20/s (a 1/s long code sends every 1.25 s, never twice in
    one second).
    """
    return limit * 0.8, max(1, int(limit * 0.05))


@dataclass(frozen=True, slots=True)
class InboundEvent:
    """Something a citizen sent us: a report or a subscriber command."""

    source: str
    external_id: str
    sender: str
    text: str
    raw: Mapping[str, object]


class ChannelError(Exception): ...


class MessageRejected(ChannelError):
    """Retrying will not help."""


class ChannelUnavailable(ChannelError):
    """Timeout, 429 or 5xx: try again later."""


class Renderer(ABC):
    """Turns alert data into this channel's messages; shared by the live and outbox modes."""

    name: ClassVar[str]
    audience: ClassVar[Audience]

    @abstractmethod
    def render_text(self, alert: AlertData, language: str) -> str:
        """The message body in `language`, before the status mark is applied."""

    def render(self, alert: AlertData, recipients: Sequence[Recipient]) -> list[OutboundMessage]:
        """One message per recipient, each carrying the forced status mark when not Actual."""
        cache: dict[str, str] = {}
        out = []
        for r in recipients:
            if r.language not in cache:
                cache[r.language] = self.marked_text(alert, r.language)
            out.append(OutboundMessage(r.address, cache[r.language], r.key, r.language))
        return out

    def marked_text(self, alert: AlertData, language: str) -> str:
        """The rendered text with the status mark that no template can leave out."""
        text = self.render_text(alert, language).strip()
        mark = status_mark(alert.status, language)
        return f"[{mark}] {text}" if mark else text

    def preview(self, alert: AlertData) -> list[Preview]:
        """The exact text for every language of the alert."""
        return [Preview(i.language, self.marked_text(alert, i.language)) for i in alert.infos]


class Channel(ABC):
    """A delivery channel: a renderer plus a way to send."""

    mode: ClassVar[str] = "live"
    limits: ChannelLimits = ChannelLimits(rate_per_second=100.0, burst=100, max_batch=200)
    # A cap on distinct recipients per window the provider enforces, when it has one.
    recipient_cap: RecipientCap | None = None

    def __init__(self, renderer: Renderer) -> None:
        self.renderer = renderer

    @property
    def name(self) -> str:
        return self.renderer.name

    @property
    def audience(self) -> Audience:
        return self.renderer.audience

    def render(self, alert: AlertData, recipients: Sequence[Recipient]) -> list[OutboundMessage]:
        return self.renderer.render(alert, recipients)

    def preview(self, alert: AlertData) -> list[Preview]:
        return self.renderer.preview(alert)

    @abstractmethod
    def send(self, message: OutboundMessage) -> str:
        """Deliver one message and return the provider's id.

        Raises: MessageRejected, ChannelUnavailable.
        """

    def send_many(self, messages: Sequence[OutboundMessage], *, proceed: Proceed | None = None) -> list[SendResult]:
        """Deliver a batch; one message's failure never stops the others. `proceed` is asked before each
        message; once it says False the rest come back `stopped` without reaching the provider."""
        return with_stopped([send_one_safely(self, m) for m in while_proceeding(messages, proceed)], messages)

    def parse_inbound(self, payload: Mapping[str, str]) -> InboundEvent | None:
        """Turn a provider webhook or poll item into an event; None when not ours."""
        return None

    def reconcile(self, message: OutboundMessage, *, since: datetime) -> str | None:
        """The provider's id when it already accepted this message since `since` (a send left in doubt by a
        dead worker); None when it did not, or cannot tell (then the message is sent again: a duplicate
        beats a missing warning)."""
        return None

    @property
    def sustained_rate(self) -> float:
        """Messages per second this channel keeps up to one person each (its tightest steady limit): planning
        gives a paced channel only the people it can reach within the send deadline."""
        return self.limits.rate_per_second

    def rate_buckets(self, message: OutboundMessage) -> tuple[list[RateBucket], int]:
        """The provider limits sending `message` draws on, and how many requests it costs."""
        return [RateBucket(f"{self.name}:rate", self.limits.rate_per_second, self.limits.burst)], 1

    def retry_after_buckets(self, message: OutboundMessage) -> list[RateBucket]:
        """The buckets a provider's Retry-After for `message` blocks: all it draws on, unless the adapter knows
        which limit the provider meant."""
        return self.rate_buckets(message)[0]


def send_one_of_batch(channel: Channel, message: OutboundMessage) -> str:
    """`Channel.send` for adapters built around `send_many`: send a batch of one and return the provider's id.

    Raises: MessageRejected (FAILED), ChannelUnavailable (RETRY).
    """
    result = channel.send_many([message])[0]
    if result.outcome is Outcome.SENT and result.provider_id:
        return result.provider_id
    if result.outcome is Outcome.FAILED:
        raise MessageRejected(result.error or f"{channel.name} rejected the message")
    raise ChannelUnavailable(result.error or f"{channel.name} unavailable")


def send_one_safely(channel: Channel, message: OutboundMessage) -> SendResult:
    """Send one message and turn every failure into a result instead of an exception."""
    try:
        provider_id = channel.send(message)
    except MessageRejected as exc:
        return SendResult(message.reference, Outcome.FAILED, error=str(exc))
    except ChannelUnavailable as exc:
        return SendResult(message.reference, Outcome.RETRY, error=str(exc))
    except Exception as exc:
        log.exception("channel %s crashed on delivery %s", channel.name, message.reference)
        return SendResult(message.reference, Outcome.RETRY, error=f"{type(exc).__name__}: {exc}")
    return SendResult(message.reference, Outcome.SENT, provider_id=provider_id)

"""Sending WhatsApp alerts through Twilio: each message is its hazard's approved template (`content_sid` and
`content_variables`), to "whatsapp:+62…", through the same request path as SMS (`channels.twilio`).

Retries: never itself; 429, 5xx and timeouts are `ChannelUnavailable` (a timeout in doubt: reconciled against
Twilio's message list before a resend), other 4xx `MessageRejected`. Limits: the Twilio account's cap (shared
with SMS), the sender's own rate and Meta's messaging tier (distinct people per 24 h), all kept by the dispatcher
in Redis for every worker.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from twilio.rest import Client

from channels.base import (
    ChannelLimits,
    MessageRejected,
    OutboundMessage,
    RateBucket,
    RecipientCap,
    Renderer,
    window_safe,
)
from channels.sms.provider import account_bucket_key
from channels.twilio.channel import TwilioChannel
from channels.twilio.client import SentMessage
from channels.whatsapp.inbound import PREFIX
from channels.whatsapp.settings import TIER_WINDOW_S, WhatsAppConfig


class TemplateMissing(MessageRejected):
    """A message has no approved template to go out as (business-initiated WhatsApp needs one)."""


def tier_cap(config: WhatsAppConfig) -> RecipientCap | None:
    """The messaging tier as a cap on distinct recipients per 24 h; None when the tier is unlimited."""
    if config.tier is None:
        return None
    owner = config.tier_key or config.from_number or config.messaging_service_sid
    return RecipientCap(f"whatsapp:tier:{owner}", config.tier, TIER_WINDOW_S)


class TwilioWhatsApp(TwilioChannel):
    """Alert templates to subscribers' WhatsApp, from one WhatsApp sender or a Messaging Service."""

    def __init__(self, renderer: Renderer, *, client: Client, config: WhatsAppConfig) -> None:
        """Raises: ValueError without a sender.

        A template without a content SID is refused per message (`TemplateMissing`); the registry refuses to
        build the live channel at all while any template lacks one."""
        super().__init__(
            renderer,
            client=client,
            status_callback_url=config.status_callback_url,
            max_concurrency=config.max_concurrency,
        )
        if not (config.from_number or config.messaging_service_sid):
            raise ValueError("WhatsApp needs whatsapp.from_number or whatsapp.messaging_service_sid")
        self.config = config
        self._sids: Mapping[str, str] = dict(config.content_sids)
        self.limits = ChannelLimits(*window_safe(config.account_rate), max_batch=500)
        self._sender_rate = window_safe(config.sender_rate)
        self._account_key = account_bucket_key(config.account_sid or str(getattr(client, "account_sid", "") or ""))
        self.recipient_cap = tier_cap(config)

    def address_of(self, message: OutboundMessage) -> str:
        """ "whatsapp:+62…": the address Twilio sends to and lists the message under."""
        return PREFIX + message.recipient

    def create_kwargs(self, message: OutboundMessage) -> dict[str, Any]:
        """To, the sender, the template's content SID and variables (JSON), the status callback.

        Raises: TemplateMissing for a message without a template or a template without a content SID.
        """
        if message.template is None:
            raise TemplateMissing("a WhatsApp alert must go out as an approved template")
        sid = self._sids.get(message.template.key)
        if not sid:
            raise TemplateMissing(f"no content SID for WhatsApp template {message.template.key!r}")
        kwargs: dict[str, Any] = {
            "to": self.address_of(message),
            "content_sid": sid,
            "content_variables": json.dumps(dict(message.template.variables), ensure_ascii=False),
        }
        if self.config.from_number:
            kwargs["from_"] = PREFIX + self.config.from_number
        if self.config.messaging_service_sid:
            kwargs["messaging_service_sid"] = self.config.messaging_service_sid
        callback = self.status_callback_for(message.reference)
        if callback:
            kwargs["status_callback"] = callback
        return kwargs

    def matches(self, message: OutboundMessage, sent: SentMessage) -> bool:
        """Twilio lists a template message with its filled-in body: the text our preview showed."""
        return sent.body == message.text

    @property
    def sustained_rate(self) -> float:
        """The sender's own rate (Twilio's default 10/s per WhatsApp sender), under the account's."""
        return min(self.limits.rate_per_second, self._sender_rate[0])

    def rate_buckets(self, message: OutboundMessage) -> tuple[list[RateBucket], int]:
        """The account's cap (shared with SMS) and the WhatsApp sender's own rate; one request per message."""
        owner = self.config.from_number or self.config.messaging_service_sid
        account = RateBucket(self._account_key, self.limits.rate_per_second, self.limits.burst)
        return [account, RateBucket(f"whatsapp:sender:{owner}", *self._sender_rate)], 1

    def retry_after_buckets(self, message: OutboundMessage) -> list[RateBucket]:
        """A 429 from Twilio is about the account's request rate: block the account bucket for everyone."""
        return self.rate_buckets(message)[0][:1]

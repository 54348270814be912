"""The SMS channel's settings (`BROADCAST_TWILIO__*`) and the one place they become its adapter config."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator

from channels.sms.provider import SenderStrategy, TwilioConfig
from channels.spec import LocalFakeUrl
from channels.whatsapp.settings import WhatsAppSettings

# Where Twilio posts to us; the public URLs are the webhook base URL plus these paths.
TWILIO_STATUS_PATH = "/webhooks/twilio/status"
TWILIO_INBOUND_PATH = "/webhooks/twilio/inbound"


class TwilioSettings(BaseModel):
    """The SMS channel's settings (`BROADCAST_TWILIO__*`)."""

    account_sid: str = ""
    auth_token: SecretStr = SecretStr("")
    messaging_service_sid: str = ""
    # Used when there is no Messaging Service: E.164 numbers, picked per recipient by sender_strategy.
    sender_numbers: list[str] = []
    sender_strategy: Literal["hash", "round_robin"] = "hash"
    # Public URL Twilio posts delivery status to; our delivery id is added to its query.
    # Empty = the webhook base URL + TWILIO_STATUS_PATH.
    status_callback_url: str = ""
    # Public base URL Twilio signs webhooks with (scheme + host as Twilio sees it); empty = public_base_url.
    webhook_base_url: str = ""
    # Outside production only: the token webhook signatures are checked with (auth_token is never used
    # there). Empty = webhooks answer 503, since an unsigned webhook must never be trusted.
    webhook_test_token: SecretStr = SecretStr("")
    # Twilio Advanced Opt-Out answers STOP/START/HELP itself: we act on them but send an empty reply.
    advanced_opt_out: bool = False
    # Requests in flight per worker process; at most 50 so that a cancel stops a process within
    # dispatch.pacing.CHECK_EVERY (100) requests, those already in flight included.
    max_concurrency: int = Field(default=32, ge=1, le=50)
    timeout_s: float = Field(default=10.0, gt=0)
    # Twilio's limits in requests per second, each kept as a Redis token bucket shared by every worker (made
    # window safe: no second sees more). The account cap applies to every message; on top of it each message
    # takes from its From number's bucket (a long code, E.164: long_code_rate; a short code, 3-8 digits:
    # short_code_rate) or, when the Messaging Service picks the number, from the service's. A service's real
    # throughput is the sum of its senders' rates; Twilio queues what goes over it for a few hours, then fails
    # it (30001, queue overflow), out of reach of a cancel: set messaging_service_rate to that sum.
    rate_per_second: float = Field(default=2000.0, gt=0)
    long_code_rate: float = Field(default=1.0, gt=0)
    short_code_rate: float = Field(default=100.0, gt=0)
    messaging_service_rate: float = Field(default=100.0, gt=0)
    # SMS budget in segments (1-3). max_segments, when set, is every alert's budget; unset, each alert gets the
    # budget of its highest CAP severity from segments_by_severity (a severity not listed: 1 segment).
    max_segments: int | None = Field(default=None, ge=1, le=3)
    segments_by_severity: dict[str, int] = Field(default_factory=lambda: {"Extreme": 3, "Severe": 3})
    # Only an estimate for previews: roughly Twilio's list price per segment to Indonesia.
    price_per_segment: Decimal = Decimal("0.41")
    currency: str = "USD"
    # Only to point the live channel at a local fake Twilio (benchmarks, tests): loopback URLs only.
    api_base_url: LocalFakeUrl = ""
    # The WhatsApp channel on this same account (BROADCAST_TWILIO__WHATSAPP__*).
    whatsapp: WhatsAppSettings = WhatsAppSettings()

    @field_validator("segments_by_severity")
    @classmethod
    def _severity_budgets(cls, value: dict[str, int]) -> dict[str, int]:
        for severity, segments in value.items():
            if severity not in ("Extreme", "Severe", "Moderate", "Minor", "Unknown"):
                raise ValueError(f"segments_by_severity: unknown CAP severity {severity!r}")
            if not 1 <= segments <= 3:
                raise ValueError(f"segments_by_severity: {severity} must be 1 to 3 segments, got {segments}")
        return value

    @property
    def configured(self) -> bool:
        return bool(self.account_sid and self.auth_token.get_secret_value())

    def webhook_base(self, public_base_url: str) -> str:
        """The scheme and host Twilio signs our webhooks with."""
        return (self.webhook_base_url or public_base_url).rstrip("/")

    def status_callback(self, public_base_url: str) -> str:
        """The StatusCallback URL given to Twilio with every message."""
        return self.status_callback_url or self.webhook_base(public_base_url) + TWILIO_STATUS_PATH

    def to_config(self, public_base_url: str) -> TwilioConfig:
        """These settings as the SMS adapter's config; the status callback defaults to our status webhook."""
        return TwilioConfig(
            account_sid=self.account_sid,
            auth_token=self.auth_token.get_secret_value(),
            messaging_service_sid=self.messaging_service_sid,
            sender_numbers=tuple(self.sender_numbers),
            sender_strategy=SenderStrategy(self.sender_strategy),
            status_callback_url=self.status_callback(public_base_url),
            max_concurrency=self.max_concurrency,
            timeout_s=self.timeout_s,
            rate_per_second=self.rate_per_second,
            long_code_rate=self.long_code_rate,
            short_code_rate=self.short_code_rate,
            messaging_service_rate=self.messaging_service_rate,
            max_segments=self.max_segments,
            severity_segments=tuple(sorted(self.segments_by_severity.items())),
            price_per_segment=Decimal(self.price_per_segment),
            currency=self.currency,
            api_base_url=self.api_base_url,
        )

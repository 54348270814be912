"""The SIM gateway's settings (`BROADCAST_SMSGATEWAY__*`), its declared phone-level limits, and the one place they
become the adapter config.

SMS Gateway for Android sends each message from one phone's SIM, so its limits are the phone's, not a provider
account's: Android itself lets one app send `android_max_count` SMS parts per `android_window_s` (30 per 30
minutes unless raised with `adb shell settings put global sms_outgoing_check_max_count N`; past it Android asks
the person holding the phone, and an unattended gateway stalls), and the SIM's operator filters a number that
sends too much in a day. The gateway is for inbound SMS and small volumes (replies, a handful of subscribers), never
a mass fan-out: that stays with Twilio.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from pydantic import BaseModel, Field, SecretStr, field_validator

from channels.base import RateBucket

# Where the gateway posts its events (sms:received, sms:sent/delivered/failed) to us.
SMSGATEWAY_WEBHOOK_PATH = "/webhooks/smsgateway"
# Android's SmsUsageMonitor defaults: 30 SMS (parts) per app per 30 minutes.
ANDROID_MAX_COUNT = 30
ANDROID_WINDOW_S = 30 * 60
# The gateway's local server listens on the phone (local mode); the cloud server relays to it (cloud mode).
CLOUD_BASE_URL = "https://api.sms-gate.app/3rdparty/v1"


def window_bucket(key: str, count: int, window_s: float) -> RateBucket:
    """A token bucket that never lets more than `count` (at least 2) requests through in any `window_s` seconds: it
    refills 80 % of the count over the window and holds the rest as its burst (rate × window + burst ≤ count)."""
    steady = min(count - 1, max(1, math.floor(count * 0.8)))
    return RateBucket(key, steady / window_s, max(1, count - steady))


@dataclass(frozen=True, slots=True)
class SmsGatewayConfig:
    """What the gateway adapter needs, passed in by the entrypoint (adapters never read settings)."""

    base_url: str = ""  # "http://192.168.1.20:8080" (local server on the phone) or the cloud server's API URL
    username: str = ""
    password: str = field(default="", repr=False)
    device_id: str = ""  # cloud mode with several phones: which one sends; "" lets the server pick
    sim_number: int | None = None  # 1-3: which SIM sends; None: the phone's default
    timeout_s: float = 10.0
    android_max_count: int = ANDROID_MAX_COUNT
    android_window_s: int = ANDROID_WINDOW_S
    daily_limit: int = 300
    message_ttl_s: int = 3600  # a message the phone could not send within this stops being tried

    def buckets(self) -> list[RateBucket]:
        """The phone's limits as shared buckets: Android's window and the daily cap (keyed by the phone)."""
        phone = self.device_id or "default"
        return [
            window_bucket(f"smsgateway:{phone}:android", self.android_max_count, self.android_window_s),
            window_bucket(f"smsgateway:{phone}:day", self.daily_limit, 86_400),
        ]


class SmsGatewaySettings(BaseModel):
    """SMS Gateway for Android: where its API is, its credentials, its webhook signing key and its phone's limits.

    Inbound SMS arrive only through signed webhooks: with no signing key the webhook refuses every event (503),
    since an unauthenticated event could register, stop or report as anyone.
    """

    # Local server mode: "http://<phone-ip>:8080" (the address the app shows); cloud mode: CLOUD_BASE_URL.
    base_url: str = ""
    # The credentials the app shows on its Home tab (local or cloud server section).
    username: str = ""
    password: SecretStr = SecretStr("")
    device_id: str = ""
    sim_number: int | None = Field(default=None, ge=1, le=3)
    # The app's Settings → Webhooks → Signing Key: every event carries X-Signature = HMAC-SHA256(key, body +
    # X-Timestamp). Empty: the webhook refuses every event.
    signing_key: SecretStr = SecretStr("")
    # How far X-Timestamp may be from our clock, either way (the gateway's docs suggest ±5 minutes).
    replay_window_s: int = Field(default=300, ge=30, le=3600)
    timeout_s: float = Field(default=10.0, gt=0)
    # Declared phone-level limits (see the module docstring); set them to what the phone really allows and give
    # the app's own Settings → Messages → Limits the same numbers.
    android_max_count: int = Field(default=ANDROID_MAX_COUNT, ge=2)
    android_window_s: int = Field(default=ANDROID_WINDOW_S, ge=60)
    daily_limit: int = Field(default=300, ge=2)
    message_ttl_s: int = Field(default=3600, ge=60)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("smsgateway.base_url must be an http:// or https:// URL")
        return value.rstrip("/")

    @property
    def configured(self) -> bool:
        """True when there is a gateway API and a password to send with."""
        return bool(self.base_url and self.password.get_secret_value())

    def to_config(self) -> SmsGatewayConfig:
        """These settings as the adapter config."""
        return SmsGatewayConfig(
            base_url=self.base_url,
            username=self.username,
            password=self.password.get_secret_value(),
            device_id=self.device_id,
            sim_number=self.sim_number,
            timeout_s=self.timeout_s,
            android_max_count=self.android_max_count,
            android_window_s=self.android_window_s,
            daily_limit=self.daily_limit,
            message_ttl_s=self.message_ttl_s,
        )

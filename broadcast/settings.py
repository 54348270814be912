"""Settings from the environment (prefix ``BROADCAST_``); only entrypoints read them."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from channels.registry import CHANNELS, channel_mode
from channels.sms.settings import TWILIO_INBOUND_PATH, TWILIO_STATUS_PATH, TwilioSettings
from channels.smsgateway.settings import SMSGATEWAY_WEBHOOK_PATH, SmsGatewaySettings
from channels.social.settings import XAccountSettings, XSettings
from channels.telegram.settings import TelegramSettings

__all__ = [
    "SMSGATEWAY_WEBHOOK_PATH",
    "TWILIO_INBOUND_PATH",
    "TWILIO_STATUS_PATH",
    "CapSigningSettings",
    "Environment",
    "Settings",
    "SmsGatewaySettings",
    "TelegramSettings",
    "TwilioSettings",
    "XAccountSettings",
    "XSettings",
    "ensure_secret_file",
    "get_settings",
    "read_secret_file",
]

PLACEHOLDER_SECRET = "dev-insecure-secret-change-me"  # noqa: S105 - a known placeholder, rejected in production


SECRET_FILE = "secret_key"  # noqa: S105 - a file name, not a secret


def read_secret_file(data_dir: Path) -> str:
    """The secret `broadcast serve` generated into this data dir, "" when there is none."""
    try:
        return (data_dir / SECRET_FILE).read_text().strip()
    except OSError:
        return ""


def ensure_secret_file(data_dir: Path) -> str:
    """The data dir's generated secret, created on first use (random, 64 hex characters, mode 0600) and reused
    afterwards; this is how the embedded default signs sessions without a configured BROADCAST_SECRET_KEY."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_secret_file(data_dir)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    return read_secret_file(data_dir)


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    STAGING = "staging"
    PRODUCTION = "production"


class CapSigningSettings(BaseModel):
    """XML-DSig for CAP: our key and certificate (PEM paths), and the certificates of senders we import from."""

    key_path: Path | None = None
    cert_path: Path | None = None
    # CAP <sender> → PEM certificate; a document from a listed sender is imported only with a matching signature.
    trusted_senders: dict[str, Path] = {}


class Settings(BaseSettings):
    """Every knob of the service. Non-production environments can never reach a real provider."""

    model_config = SettingsConfigDict(env_prefix="BROADCAST_", env_nested_delimiter="__", env_file=None, extra="ignore")

    environment: Environment = Environment.DEVELOPMENT
    data_dir: Path = Path("broadcast-data")
    # Empty means: a SQLite file under data_dir.
    database_url: str = ""
    # Empty means: the embedded Redis that `broadcast serve` starts under data_dir.
    broker_url: str = ""
    secret_key: SecretStr = SecretStr(PLACEHOLDER_SECRET)
    public_base_url: str = "http://127.0.0.1:8000"
    session_ttl_minutes: int = 12 * 60
    max_body_bytes: int = 1_000_000
    enabled_channels: list[str] = ["sms", "social", "web"]
    sender_id: str = "bpbd@broadcast.local"
    # The jurisdiction of the system actor that imports (CLI `cap import` without --author, BMKG): a provinsi or
    # kabupaten/kota code; empty = national. It authors drafts only; a person in the area still approves them.
    system_jurisdiction: str = ""
    # BMKG sources a beat job polls for new items (URLs or folders); empty disables the job.
    bmkg_sources: list[str] = []
    bmkg_poll_seconds: float = 300.0
    # How often beat reads mentions of the agency X accounts into reports (production with X configured).
    x_poll_seconds: float = 60.0
    # "text" for people, "json" (one object per line, with alert_id) for log collectors.
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Outbound requests (partner webhooks, BMKG fetches) go only to public addresses; these hosts, IPs or CIDR
    # networks are allowed although private or loopback (a local test fake, a partner on the agency network).
    outbound_allow_hosts: list[str] = []
    # Browser origins allowed to call the API cross-site; empty = CORS closed.
    cors_origins: list[str] = []
    # Sign-in attempts that did not succeed before one account from one client address, or one address over
    # every account, is refused (429) until the window ends; past the account-wide threshold (from any address)
    # each attempt waits a growing delay (at most login_max_delay_s) instead: slowed, never locked out.
    login_max_failures_per_account: int = Field(default=5, ge=1)
    login_max_failures_per_ip: int = Field(default=30, ge=1)
    login_slow_after_failures_per_account: int = Field(default=10, ge=1)
    login_max_delay_s: float = Field(default=16.0, ge=0, le=60)
    login_throttle_window_s: int = Field(default=15 * 60, ge=1)
    # Reverse proxies whose X-Forwarded-For is believed (comma-separated addresses or networks, e.g.
    # "10.0.0.5,172.18.0.0/16"); empty: none, the connecting address is the client.
    forwarded_allow_ips: str = ""
    # Empty: /metrics is open (keep it behind the reverse proxy); set: it needs "Authorization: Bearer <token>".
    metrics_token: SecretStr = SecretStr("")
    twilio: TwilioSettings = TwilioSettings()
    x: XSettings = XSettings()
    telegram: TelegramSettings = TelegramSettings()
    smsgateway: SmsGatewaySettings = SmsGatewaySettings()
    # Partner systems that POST reports to /api/v1/reports: name -> API key (sent as X-API-Key).
    report_api_keys: dict[str, SecretStr] = {}
    # Concurrent intake POSTs share one multi-row INSERT and commit (off: one INSERT and commit per request, the
    # naive path, kept for the benchmark baseline and as a fallback).
    report_intake_batching: bool = True
    # Enrichment takes the waiting reports in batches (one keyword pass, one point-in-polygon query per level, one
    # bulk UPDATE per batch; off: one transaction per report, the old path, kept for the benchmark baseline).
    report_enrich_batching: bool = True
    # Limit the geoparser to one region (a code prefix such as "31" for DKI Jakarta); empty: all Indonesia.
    reports_geoparse_within: str = ""
    # Subscribers are Indonesian mobile numbers; numbers of other countries (still mobile) only when this is on.
    subscriber_foreign_numbers: bool = False
    # Public report form (/lapor): photo size and per-IP / per-phone limits per window.
    report_photo_max_bytes: int = 5_000_000
    report_limit_per_ip: int = 10
    report_limit_per_phone: int = 5
    report_limit_window_s: int = 600
    # /cek: verification-code lookups per client address per report_limit_window_s (the code space is 32^6).
    check_code_limit_per_ip: int = Field(default=30, ge=1)
    report_form_min_seconds: float = 3.0
    # Public pages and feeds rendered once per change (broadcast.web.pagecache, docs/public-cache.md): off renders
    # every request. The public state version is read at most every public_cache_check_ms per process (a change
    # committed by this process is seen at once); entries per process, /cek lookups in their own smaller space;
    # Cache-Control lets browsers and a reverse proxy keep a page max_age_s and serve it stale while revalidating.
    public_cache: bool = True
    public_cache_check_ms: float = Field(default=50.0, ge=0, le=1000)
    public_cache_entries: int = Field(default=512, ge=1)
    public_cache_cek_entries: int = Field(default=2048, ge=1)
    public_cache_max_age_s: int = Field(default=5, ge=0)
    public_cache_stale_s: int = Field(default=30, ge=0)
    cap_signing: CapSigningSettings = CapSigningSettings()
    # Fan-out: recipients per batch task; how long a claim holds a row before another worker may take it over
    # (reconciling with the provider first); how often beat sweeps; when a pending row counts as lost.
    dispatch_batch_size: int = Field(default=500, ge=1, le=5000)
    dispatch_lease_s: int = Field(default=300, ge=1)
    dispatch_sweep_s: float = Field(default=30.0, gt=0)
    dispatch_stale_s: int = Field(default=60, ge=1)
    # One person, many channels: how long a message sent on a channel with delivery receipts may stay undelivered
    # before the person's next channel is tried (docs/fan-out.md).
    dispatch_fallback_s: int = Field(default=120, ge=1, le=3600)
    # How long after planning a person may wait on their preferred channel before their next one takes over: a
    # channel that cannot send to them by then (its provider's rate) gets only the people it can reach in time;
    # a row still unsent at the deadline moves to the next channel. 0 turns both off (docs/fan-out.md).
    dispatch_send_deadline_s: int = Field(default=30, ge=0, le=3600)
    # Operations-centre map: an optional raster tile layer under the packaged boundaries (which always work
    # offline), e.g. "https://tiles.example.id/{z}/{x}/{y}.png"; its origin is added to the CSP img-src.
    map_tile_url: str = ""
    map_tile_attribution: str = ""

    @field_validator("map_tile_url")
    @classmethod
    def _tile_url_is_a_template(cls, value: str) -> str:
        if value and (
            urlsplit(value).scheme not in ("https", "http")
            or not urlsplit(value).netloc
            or not all(part in value for part in ("{z}", "{x}", "{y}"))
            or any(c in value for c in " ;'\"\n")
        ):
            raise ValueError("BROADCAST_MAP_TILE_URL must be an http(s) URL template with {z}, {x} and {y}")
        return value

    @property
    def map_tile_origin(self) -> str:
        """The scheme and host of the tile server ("" without one), for the CSP."""
        parts = urlsplit(self.map_tile_url)
        return f"{parts.scheme}://{parts.netloc}" if self.map_tile_url else ""

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _networks(cls, value: str) -> str:
        for part in filter(None, (p.strip() for p in value.split(","))):
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError as exc:
                raise ValueError(f"BROADCAST_FORWARDED_ALLOW_IPS: '{part}' is not an address or network") from exc
        return value

    @model_validator(mode="after")
    def _production_is_configured(self) -> Settings:
        if self.secret_key.get_secret_value() in ("", PLACEHOLDER_SECRET):
            generated = read_secret_file(self.data_dir)
            if generated:
                self.secret_key = SecretStr(generated)
        if self.environment is Environment.PRODUCTION:
            if self.secret_key.get_secret_value() in ("", PLACEHOLDER_SECRET):
                raise ValueError("BROADCAST_SECRET_KEY must be set to a real secret in production")
            if not self.database_url:
                raise ValueError("BROADCAST_DATABASE_URL must be set in production")
            if not self.broker_url:
                raise ValueError("BROADCAST_BROKER_URL must be set in production")
        return self

    @property
    def uses_placeholder_secret(self) -> bool:
        """True when sessions would be signed with the published placeholder (or nothing)."""
        return self.secret_key.get_secret_value() in ("", PLACEHOLDER_SECRET)

    @property
    def forwarded_allow_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """The proxies whose X-Forwarded-For is believed."""
        parts = filter(None, (p.strip() for p in self.forwarded_allow_ips.split(",")))
        return tuple(ipaddress.ip_network(p, strict=False) for p in parts)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'broadcast.sqlite3').resolve()}"

    @property
    def embedded_broker(self) -> bool:
        return not self.broker_url

    @property
    def redis_socket(self) -> Path:
        return (self.data_dir / "redis.sock").resolve()

    @property
    def resolved_broker_url(self) -> str:
        """The Celery broker; the embedded Redis listens on a unix socket in data_dir."""
        if self.broker_url:
            return self.broker_url
        return f"redis+socket://{self.redis_socket}"

    @property
    def resolved_redis_url(self) -> str:
        """The same Redis as a redis-py URL (rate limits, live events)."""
        if self.broker_url:
            return self.broker_url
        return f"unix://{self.redis_socket}"

    @property
    def live_providers_allowed(self) -> bool:
        """Only production may talk to real providers; every other environment is outbox-only."""
        return self.environment is Environment.PRODUCTION

    @property
    def twilio_webhook_base_url(self) -> str:
        """The scheme and host Twilio signs our webhooks with."""
        return self.twilio.webhook_base(self.public_base_url)

    @property
    def twilio_status_callback_url(self) -> str:
        """The StatusCallback URL given to Twilio with every message."""
        return self.twilio.status_callback(self.public_base_url)

    @property
    def twilio_webhook_token(self) -> str:
        """The token webhook signatures are verified with: the auth token in production, the test token
        elsewhere; "" when none is configured (webhooks then refuse every request)."""
        if self.live_providers_allowed:
            return self.twilio.auth_token.get_secret_value()
        return self.twilio.webhook_test_token.get_secret_value()

    @property
    def report_author_key(self) -> bytes:
        """The key reports hash a sender's phone number with (derived from secret_key)."""
        return hmac.new(self.secret_key.get_secret_value().encode(), b"report-author-v1", hashlib.sha256).digest()

    @property
    def cap_signing_keypair_paths(self) -> tuple[Path, Path] | None:
        """The configured CAP signing key and certificate; outside production without them, a development pair
        created under data_dir (never in the repository); None in production without them (CAP goes unsigned)."""
        if self.cap_signing.key_path and self.cap_signing.cert_path:
            return self.cap_signing.key_path, self.cap_signing.cert_path
        if self.environment is Environment.PRODUCTION:
            return None
        folder = (self.data_dir / "cap-signing").resolve()
        return folder / "key.pem", folder / "cert.pem"

    def channel_mode(self, channel: str) -> str:
        """`live` when production and the provider is configured, else `outbox` (channels.registry decides).

        The web channel is our own site, so it is always live; an unknown channel is the outbox."""
        spec = CHANNELS.get(channel)
        return "outbox" if spec is None else channel_mode(spec, self, live_allowed=self.live_providers_allowed)


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()

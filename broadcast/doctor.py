"""`broadcast doctor`: what is wrong with this deployment, one finding per check."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from broadcast.settings import PLACEHOLDER_SECRET, Environment, Settings
from channels.registry import CHANNELS


class Level(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Finding:
    check: str
    level: Level
    detail: str


def _secrets(settings: Settings) -> list[Finding]:
    production = settings.environment is Environment.PRODUCTION
    secret = settings.secret_key.get_secret_value()
    if secret in ("", PLACEHOLDER_SECRET) or len(secret) < 32:
        level = Level.FAIL if production else Level.WARN
        return [
            Finding(
                "secret key",
                level,
                "BROADCAST_SECRET_KEY is the placeholder or shorter than 32 characters (with the placeholder the API "
                "answers only on loopback; 'broadcast serve' generates one into the data dir)",
            )
        ]
    return [Finding("secret key", Level.OK, "set")]


def _channels(settings: Settings) -> list[Finding]:
    out = []
    production = settings.environment is Environment.PRODUCTION
    credentials = {name: spec.credentials_hint for name, spec in CHANNELS.items() if spec.credentials_hint}
    for channel in settings.enabled_channels:
        mode = settings.channel_mode(channel)
        if channel in credentials and production and mode != "live":
            out.append(
                Finding(
                    f"channel {channel}",
                    Level.FAIL,
                    f"enabled but not configured: messages stay in the outbox (set {credentials[channel]})",
                )
            )
        else:
            out.append(Finding(f"channel {channel}", Level.OK, mode))
    if production and "sms" in settings.enabled_channels and not settings.twilio_webhook_token:
        out.append(
            Finding("twilio webhooks", Level.FAIL, "no auth token: delivery callbacks and inbound SMS answer 503")
        )
    if production and not settings.public_base_url.startswith("https://"):
        out.append(Finding("public URL", Level.FAIL, f"{settings.public_base_url} is not https"))
    return out


def _database(settings: Settings) -> list[Finding]:
    from sqlalchemy import text

    from broadcast import migrate
    from broadcast.db import make_engine

    engine = make_engine(settings.resolved_database_url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        pending = migrate.pending_revisions(engine)
    except Exception as exc:
        return [Finding("database", Level.FAIL, f"unreachable ({type(exc).__name__}: {str(exc)[:120]})")]
    finally:
        engine.dispose()
    found = [Finding("database", Level.OK, engine.url.render_as_string(hide_password=True))]
    if pending:
        found.append(Finding("migrations", Level.FAIL, "pending: run 'broadcast db upgrade'"))
    else:
        found.append(Finding("migrations", Level.OK, "at head"))
    return found


def _broker(settings: Settings, *, worker_timeout_s: float) -> list[Finding]:
    from broadcast.broker import check_workers, queue_depths
    from broadcast.redisclient import redis_client

    try:
        redis_client(settings.resolved_redis_url, timeout_s=2).ping()
    except Exception as exc:
        hint = " (the embedded broker runs only under 'broadcast serve')" if settings.embedded_broker else ""
        return [
            Finding("broker", Level.FAIL, f"unreachable ({type(exc).__name__}){hint}"),
            Finding("workers", Level.FAIL, "cannot ask: broker unreachable"),
        ]
    depths = queue_depths(settings.resolved_redis_url)
    found = [Finding("broker", Level.OK, "queues: " + ", ".join(f"{q}={n}" for q, n in depths.items()))]
    try:
        n = check_workers(settings.resolved_broker_url, timeout_s=worker_timeout_s)
    except Exception as exc:
        return [*found, Finding("workers", Level.FAIL, f"ping failed ({type(exc).__name__})")]
    if n == 0:
        found.append(Finding("workers", Level.FAIL, "no Celery worker answered: nothing will be sent"))
    else:
        found.append(Finding("workers", Level.OK, f"{n} answered"))
    return found


def _limits(settings: Settings) -> list[Finding]:
    """The one limiter (sign-in throttle, public forms) needs its Redis: without it sign-in is refused and the
    public forms are limited per process only."""
    from broadcast import limits

    state = limits.status(settings.resolved_redis_url)
    if not state.ok and settings.embedded_broker:
        return [Finding("rate limits", Level.FAIL, state.detail + " (the embedded Redis runs under 'broadcast serve')")]
    return [Finding("rate limits", Level.OK if state.ok else Level.FAIL, state.detail)]


def _cap_signing(settings: Settings) -> list[Finding]:
    """Served CAP is signed (XML-DSig) so partners can tell it from a forgery; production needs its own key."""
    production = settings.environment is Environment.PRODUCTION
    key, cert = settings.cap_signing.key_path, settings.cap_signing.cert_path
    if not (key and cert):
        if production:
            return [
                Finding(
                    "CAP signing",
                    Level.FAIL,
                    "no key: served CAP is unsigned (set BROADCAST_CAP_SIGNING__KEY_PATH and __CERT_PATH)",
                )
            ]
        return [Finding("CAP signing", Level.OK, "development key under the data directory")]
    unreadable = [str(p) for p in (key, cert) if not p.is_file()]
    if unreadable:
        return [Finding("CAP signing", Level.FAIL, f"cannot read {', '.join(unreadable)}")]
    trusted = settings.cap_signing.trusted_senders
    missing = [f"{sender}: {path}" for sender, path in trusted.items() if not path.is_file()]
    if missing:
        return [Finding("CAP signing", Level.FAIL, f"trusted sender certificates missing: {'; '.join(missing)}")]
    return [Finding("CAP signing", Level.OK, f"signing with {cert}")]


def diagnose(settings: Settings, *, worker_timeout_s: float = 2.0) -> list[Finding]:
    """Every check of the deployment described by `settings`, in order; nothing is changed."""
    return [
        *_secrets(settings),
        *_channels(settings),
        *_cap_signing(settings),
        *_database(settings),
        *_broker(settings, worker_timeout_s=worker_timeout_s),
        *_limits(settings),
    ]

"""Abuse guards shared by the public forms (/lapor, /lapor-hoaks, /cek): per-address and per-phone limits and
single-use form tokens, on the one limiter (broadcast.limits). If Redis is down they are kept per process
instead (never switched off), and /readyz and `broadcast doctor` say so."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from broadcast import limits
from broadcast.errors import Invalid, TooManyRequests
from broadcast.settings import Settings

FORM_MAX_AGE_S = 24 * 3600


class FormRejected(Invalid):
    code = "report-form-rejected"


def counters(settings: Settings) -> limits.DegradingCounters:
    """The public forms' counters: Redis, or this process's while Redis is down."""
    return limits.DegradingCounters(settings.resolved_redis_url, purpose="public forms")


def check_rate(
    settings: Settings, *, ip: str, phone_hash: str | None, scope: str = "lapor", per_ip: int | None = None
) -> None:
    """Count this submission per address and per phone (per form, `scope`) over a fixed window, then refuse it
    when a count is over its limit. `per_ip` overrides the configured per-address limit (e.g. a cheap lookup).

    Raises: TooManyRequests.
    """
    window = settings.report_limit_window_s
    rules = [
        (
            limits.Window(limits.key(scope, "ip", ip), window),
            per_ip if per_ip is not None else settings.report_limit_per_ip,
        )
    ]
    if phone_hash:
        rules.append((limits.Window(limits.key(scope, "phone", phone_hash), window), settings.report_limit_per_phone))
    counts = counters(settings).hit([w for w, _ in rules])
    hit = limits.over(counts, [limit for _, limit in rules])
    if hit is not None:
        what = "nomor ini / this number" if hit.key == rules[-1][0].key and phone_hash else "alamat ini / this address"
        raise TooManyRequests(
            f"Terlalu banyak permintaan dari {what}; coba lagi dalam {max(hit.retry_after_s // 60, 1)} menit / "
            f"too many requests, try again in {max(hit.retry_after_s // 60, 1)} minutes",
            retry_after_s=hit.retry_after_s,
        )


def use_once(settings: Settings, *, form: str, token: str, ttl_s: int) -> bool:
    """True the first time this form token is sent, False for every repeat within `ttl_s`."""
    return counters(settings).once(limits.key(f"form:{form}", token)[len(limits.PREFIX) :], ttl_s=ttl_s)


def form_token(settings: Settings, *, form: str, now: float | None = None, nonce: str | None = None) -> str:
    """A signed token for one rendering of a public form: when it was rendered and a random nonce, so each
    rendering is distinct and can be sent once."""
    stamp = str(int(now if now is not None else time.time()))
    nonce = nonce if nonce is not None else secrets.token_hex(8)
    sig = hmac.new(settings.secret_key.get_secret_value().encode(), f"{form}:{stamp}:{nonce}".encode(), hashlib.sha256)
    return f"{stamp}.{nonce}.{sig.hexdigest()[:32]}"


def check_form_token(
    settings: Settings, token: str, *, form: str, min_age_s: float = 0.0, now: float | None = None
) -> None:
    """The form was rendered by us, at least `min_age_s` and less than a day ago, and this token has not been
    sent before (each rendering submits once).

    Raises: FormRejected.
    """
    now = now if now is not None else time.time()
    stamp, _, rest = token.partition(".")
    nonce = rest.partition(".")[0]
    valid = stamp.isdigit() and len(nonce) == 16 and nonce.isalnum()
    if not valid or not hmac.compare_digest(form_token(settings, form=form, now=int(stamp), nonce=nonce), token):
        raise FormRejected("Formulir tidak sah, muat ulang halaman / invalid form, reload the page")
    age = now - int(stamp)
    if age < min_age_s:
        raise FormRejected("Terlalu cepat, periksa isian lalu kirim lagi / sent too fast, check and send again")
    if age > FORM_MAX_AGE_S:
        raise FormRejected("Formulir kedaluwarsa, muat ulang halaman / form expired, reload the page")
    if not use_once(settings, form=form, token=token, ttl_s=FORM_MAX_AGE_S + 60):
        raise FormRejected("Formulir ini sudah dikirim, muat ulang halaman / form already sent, reload the page")

"""Abuse guards shared by the public forms (/lapor, /lapor-hoaks, /cek): per-IP and per-phone limits in Redis."""

from __future__ import annotations

import logging

import redis
from fastapi import Request

from broadcast.errors import TooManyRequests
from broadcast.settings import Settings

log = logging.getLogger(__name__)


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def check_rate(
    settings: Settings, *, ip: str, phone_hash: str | None, scope: str = "lapor", per_ip: int | None = None
) -> None:
    """Per-IP and per-phone limits over a fixed window in Redis, counted per form (`scope`); if Redis is down
    the submission is still taken. `per_ip` overrides the configured per-IP limit (e.g. for a cheap lookup).

    Raises: TooManyRequests.
    """
    window = settings.report_limit_window_s
    keys = [(f"{scope}:ip:{ip}", per_ip if per_ip is not None else settings.report_limit_per_ip)]
    if phone_hash:
        keys.append((f"{scope}:phone:{phone_hash[:32]}", settings.report_limit_per_phone))
    try:
        client = redis.Redis.from_url(settings.resolved_redis_url, socket_timeout=2)
        pipe = client.pipeline()
        for key, _ in keys:
            pipe.incr(key)
            pipe.expire(key, window, nx=True)
        counts = pipe.execute()[::2]
    except (redis.RedisError, OSError) as exc:
        log.warning("report form rate limit unavailable, report accepted: %s", exc)
        return
    for (key, limit), count in zip(keys, counts, strict=True):
        if int(count) > limit:
            what = "nomor ini / this number" if ":phone:" in key else "alamat ini / this address"
            raise TooManyRequests(
                f"Terlalu banyak laporan dari {what}; coba lagi dalam {window // 60} menit / "
                f"too many reports, try again in {window // 60} minutes",
                retry_after_s=window,
            )

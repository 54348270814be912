"""Operations endpoints: liveness, readiness (database, broker, workers) and Prometheus metrics.

`/metrics` is unauthenticated by default, like most Prometheus exporters (it shows counts, never content or
phone numbers), and should be kept off the public internet by the reverse proxy; set
BROADCAST_METRICS_TOKEN to require `Authorization: Bearer <token>` instead.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from broadcast import __version__, limits
from broadcast.api.deps import SessionDep, SettingsDep, find_current_user
from broadcast.broker import check_workers, queue_depths
from broadcast.db import get_engine, session_factory
from broadcast.dispatch.models import Delivery
from broadcast.errors import BroadcastError, Unauthorized
from broadcast.redisclient import redis_client
from broadcast.reports.models import Report
from broadcast.settings import Settings

log = logging.getLogger(__name__)
router = APIRouter(tags=["ops"])


def readiness(settings: Settings, *, worker_timeout_s: float = 1.0) -> dict[str, dict[str, Any]]:
    """Each dependency with ok True/False and a short detail: database, broker, workers, and the rate limits
    (down: sign-in refused, public forms limited per process). Opens its own short session (`cached_readiness`
    runs it at most once a second, whatever the number of callers)."""
    with session_factory(get_engine(settings.resolved_database_url))() as session:
        return _readiness(session, settings, worker_timeout_s=worker_timeout_s)


def _readiness(session: Session, settings: Settings, *, worker_timeout_s: float) -> dict[str, dict[str, Any]]:
    checks: dict[str, dict[str, Any]] = {}
    try:
        session.execute(text("SELECT 1"))
        checks["database"] = {"ok": True}
    except Exception as exc:
        log.warning("readiness: database unreachable: %s", type(exc).__name__)
        checks["database"] = {"ok": False, "detail": f"database unreachable ({type(exc).__name__})"}
    try:
        redis_client(settings.resolved_redis_url).ping()
        checks["broker"] = {"ok": True}
    except Exception as exc:
        checks["broker"] = {"ok": False, "detail": f"broker unreachable ({type(exc).__name__})"}
    if checks["broker"]["ok"]:
        try:
            n = check_workers(settings.resolved_broker_url, timeout_s=worker_timeout_s)
            checks["workers"] = {"ok": n > 0, "count": n} | ({} if n else {"detail": "no worker answered a ping"})
        except Exception as exc:
            checks["workers"] = {"ok": False, "detail": f"could not ping workers ({type(exc).__name__})"}
    else:
        checks["workers"] = {"ok": False, "detail": "broker unreachable"}
    if checks["database"]["ok"]:
        checks["fanout"] = fanout_check(session)
    limiter = limits.status(settings.resolved_redis_url)
    checks["limits"] = {"ok": limiter.ok, "detail": limiter.detail}
    return checks


def fanout_check(session: Session) -> dict[str, Any]:
    """Fan-outs the broker has not taken yet (approved while it was down): ok when none is waiting."""
    from broadcast.dispatch import enqueue

    try:
        w = enqueue.waiting(session)
    except Exception as exc:
        session.rollback()
        return {"ok": False, "detail": f"could not read the enqueue outbox ({type(exc).__name__})"}
    if not w.count:
        return {"ok": True, "waiting": 0}
    return {
        "ok": False,
        "waiting": w.count,
        "alert_ids": w.alert_ids,
        "oldest_s": round(w.oldest_s, 1),
        "detail": (
            f"{w.count} penyebaran menunggu broker / {w.count} fan-out task(s) waiting for the broker "
            f"(alerts {', '.join(map(str, w.alert_ids))}); they start by themselves when it answers"
        ),
    }


READY_TTL_S = 1.0


@dataclass
class _ReadySlot:
    at: float = -1e9
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = field(
        default_factory=weakref.WeakKeyDictionary
    )


_ready_slots: dict[tuple[str, str, str], _ReadySlot] = {}


async def cached_readiness(settings: Settings, *, ttl_s: float = READY_TTL_S) -> dict[str, dict[str, Any]]:
    """`readiness`, computed at most once per `ttl_s` per deployment: concurrent callers wait (without a thread
    or a database connection each) for the one check in flight and share its answer."""
    key = (settings.resolved_database_url, settings.resolved_redis_url, settings.resolved_broker_url)
    slot = _ready_slots.setdefault(key, _ReadySlot())
    if time.monotonic() - slot.at < ttl_s:
        return slot.checks
    loop = asyncio.get_running_loop()
    lock = slot.locks.setdefault(loop, asyncio.Lock())
    async with lock:
        if time.monotonic() - slot.at < ttl_s:
            return slot.checks
        checks = await run_in_threadpool(readiness, settings)
        slot.checks, slot.at = checks, time.monotonic()
    return checks


@router.get("/healthz")
def healthz(request: Request, session: SessionDep, settings: SettingsDep) -> dict[str, str]:
    """Liveness and database reachability; the version and environment only to signed-in staff."""
    session.execute(text("SELECT 1"))
    try:
        user = find_current_user(request, session, settings)
    except BroadcastError:
        user = None
    if user is None:
        return {"status": "ok"}
    return {"status": "ok", "version": __version__, "environment": settings.environment.value}


@router.get("/readyz", responses={503: {"description": "a dependency is down"}})
async def readyz(settings: SettingsDep) -> JSONResponse:
    """Ready to take traffic: the database answers, the broker answers, at least one worker answers a ping (1 s)
    and the rate limits have their store. 503 with the failing checks otherwise. Cached for a second and shared
    by concurrent callers."""
    checks = await cached_readiness(settings)
    ok = all(c["ok"] for c in checks.values())
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks},
        status_code=200 if ok else 503,
        headers={"Cache-Control": "no-store"},
    )


class _Collector(Collector):
    def __init__(self, session: Session, settings: Settings) -> None:
        self.session = session
        self.settings = settings

    def collect(self) -> Iterator[Any]:
        started = time.monotonic()
        deliveries = GaugeMetricFamily(
            "broadcast_deliveries", "Delivery rows by channel and state", labels=["channel", "state"]
        )
        for channel, state, n in self.session.execute(
            select(Delivery.channel, Delivery.state, func.count()).group_by(Delivery.channel, Delivery.state)
        ):
            deliveries.add_metric([channel, state], n)
        yield deliveries
        errors = CounterMetricFamily(
            "broadcast_provider_errors", "Deliveries a provider refused or failed, by channel", labels=["channel"]
        )
        failed = (Delivery.error.is_not(None)) | (Delivery.provider_error_code.is_not(None))
        for channel, n in self.session.execute(
            select(Delivery.channel, func.count()).where(failed).group_by(Delivery.channel)
        ):
            errors.add_metric([channel], n)
        yield errors
        reports = CounterMetricFamily(
            "broadcast_reports_received",
            "Public reports received, by source (rate() gives the intake rate)",
            labels=["source"],
        )
        for source, n in self.session.execute(select(Report.source, func.count()).group_by(Report.source)):
            reports.add_metric([source], n)
        yield reports
        depth = GaugeMetricFamily("broadcast_queue_depth", "Tasks waiting per Celery queue", labels=["queue"])
        up = GaugeMetricFamily("broadcast_broker_up", "1 when the broker answered")
        try:
            for queue, n in queue_depths(self.settings.resolved_redis_url).items():
                depth.add_metric([queue], n)
            up.add_metric([], 1)
        except Exception:
            up.add_metric([], 0)
        yield depth
        yield up
        yield GaugeMetricFamily(
            "broadcast_metrics_scrape_seconds", "Time spent collecting these metrics", value=time.monotonic() - started
        )


@router.get("/metrics", response_class=Response)
def metrics(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """Prometheus metrics: deliveries by channel and state, provider errors, reports received, queue depth.

    Raises: Unauthorized (BROADCAST_METRICS_TOKEN is set and the bearer token differs).
    """
    token = settings.metrics_token.get_secret_value()
    if token:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise Unauthorized("Token metrik salah / wrong metrics token", code="metrics-token")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(session, settings))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

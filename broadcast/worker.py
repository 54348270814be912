"""The Celery app: the task modules it loads, queues, reliability settings and the beat schedule, and what a worker
does at start. Settings are read when the app is first configured (a worker's start, the first send), not at
import."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import beat_init, worker_init, worker_process_init, worker_ready

from broadcast import runtime
from broadcast.dispatch.planning import INTAKE_QUEUE, ROUTINE_QUEUE
from broadcast.settings import Settings, get_settings

log = logging.getLogger(__name__)

TASK_MODULES = [
    "broadcast.dispatch.tasks",
    "broadcast.alerts.tasks",
    "broadcast.partners.tasks",
    "broadcast.reports.tasks",
    "broadcast.trust.tasks",
    "broadcast.subscribers.tasks",
]
# Longer than any task plus its retry countdown, so Redis does not redeliver a running task.
VISIBILITY_TIMEOUT_S = 2 * 3600
# What citizens (reports, replies) and outside sources (X, BMKG polls) make us do: routed to the intake queue,
# which only the intake worker pool (`broadcast worker --queues intake`) consumes. The pool that sends warnings
# (`critical,broadcast`) never sees these tasks, however many arrive or however long they run.
INTAKE_ROUTES = {
    "reports.*": {"queue": INTAKE_QUEUE},
    "trust.*": {"queue": INTAKE_QUEUE},
    "subscribers.*": {"queue": INTAKE_QUEUE},
    "alerts.poll_bmkg": {"queue": INTAKE_QUEUE},
}
DISPATCH_QUEUES = "critical,broadcast"


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery configuration of these settings: acks-late, reject-on-worker-loss, one reserved task per
    process, the intake routes and the beat schedule."""
    return {
        "broker_url": settings.resolved_broker_url,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_ignore_result": True,
        "task_default_queue": ROUTINE_QUEUE,
        "task_routes": INTAKE_ROUTES,
        # A worker listening to several queues always takes from the first non-empty one in this order.
        "broker_transport_options": {"visibility_timeout": VISIBILITY_TIMEOUT_S, "queue_order_strategy": "priority"},
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
        "timezone": "UTC",
        "enable_utc": True,
        "beat_schedule": {
            "dispatch-sweep": {"task": "dispatch.sweep", "schedule": settings.dispatch_sweep_s},
            "partners-sweep": {"task": "partners.sweep", "schedule": 60.0},
            "reports-sweep": {"task": "reports.sweep", "schedule": 30.0},
            "trust-replies-sweep": {"task": "trust.sweep_replies", "schedule": 60.0},
            "consent-sms-sweep": {"task": "subscribers.sweep_confirmations", "schedule": 60.0},
            **(
                {"x-mentions": {"task": "reports.poll_x", "schedule": settings.x_poll_seconds}}
                if settings.live_providers_allowed and settings.x.configured and settings.x_poll_seconds > 0
                else {}
            ),
            **(
                {"bmkg-poll": {"task": "alerts.poll_bmkg", "schedule": settings.bmkg_poll_seconds}}
                if settings.bmkg_sources and settings.bmkg_poll_seconds > 0
                else {}
            ),
        },
    }


def create_celery(settings: Settings | None = None) -> Celery:
    """A Celery app loading the task modules. Its configuration comes from `settings`, or when none are given
    from `get_settings()` at the moment the app is first configured (a worker's or beat's start, the first send),
    never at import."""
    app = Celery("broadcast", include=TASK_MODULES)
    app.add_defaults(lambda: celery_config(settings or get_settings()))
    return app


celery = create_celery()


@worker_init.connect
def _check_channels(**_: object) -> None:
    """Build every enabled channel at worker start, so bad configuration fails before any alert; load the
    boundaries once for every pool process."""
    channels = runtime.active_channels()
    log.info("channels: %s", {n: c.mode for n, c in channels.items()})
    runtime.preload()
    _load_subscribers_before_fork()
    if INTAKE_QUEUE in (celery.amqp.queues.consume_from or {}):
        from broadcast.reports.enrichment import preload as preload_reports

        preload_reports(within=get_settings().reports_geoparse_within or None)


@worker_process_init.connect
def _warm_up(**_: object) -> None:
    """Open this pool process's database and Redis connections before the first task, so the first batch of
    an alert does not pay for them (approval to first provider request is a goal)."""
    try:
        runtime.warm_up()
    except Exception:  # a cold start is slower, not broken
        log.warning("worker warm-up failed", exc_info=True)
    _prewarm_subscribers()


def _plans() -> bool:
    """Whether this worker consumes the queues fan-outs are planned on (the intake worker does not)."""
    from broadcast.dispatch.planning import QUEUES

    consumed = getattr(celery.amqp.queues, "consume_from", None)
    return not consumed or bool(set(consumed) & set(QUEUES))


def _load_subscribers_before_fork() -> None:
    """Load the warm subscriber index in the main process, before the pool forks: every pool process then
    shares its arrays copy-on-write (one copy in memory per worker, not one per pool process) and starts warm,
    also when it replaces one that died. The worker starts consuming after the load (seconds per million
    subscribers); if it fails, each pool process loads its own."""
    from broadcast.db import get_engine
    from broadcast.subscribers import warm

    if not _plans():
        return
    engine = get_engine(get_settings().resolved_database_url)
    index = warm.index_for(engine)
    try:
        index.snapshot()
    except Exception:
        log.warning("warm subscriber index: load before fork failed", exc_info=True)
    finally:
        index.close()  # the pool processes open their own connections
        engine.dispose()


def _prewarm_subscribers() -> None:
    """A process that plans fan-outs brings the warm subscriber index up to date now, in the background (from
    the parent's copy, or with a full load if there is none), so the first alert's plan costs its recipients,
    not a full table read (the intake worker never plans: it skips this)."""
    from broadcast.subscribers import warm

    if _plans():
        warm.prewarm(runtime.engine())


def _start_outbox_drain(name: str) -> None:
    from broadcast.dispatch import enqueue

    enqueue.start_drain_loop(runtime.engine, celery, name=name)


@worker_ready.connect
def _drain_outbox_in_worker(**_: object) -> None:
    """Tasks the broker refused (an approval while it was down) are enqueued by the worker as soon as it is up,
    then every few seconds (broadcast.dispatch.enqueue)."""
    _start_outbox_drain("worker")


@beat_init.connect
def _drain_outbox_in_beat(**_: object) -> None:
    """Beat drains the outbox too, so a deployment whose workers are all busy still enqueues."""
    _start_outbox_drain("beat")

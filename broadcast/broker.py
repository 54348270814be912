"""Probes of the broker shared by /readyz, /metrics and `broadcast doctor`: queue depths and worker pings."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from broadcast.dispatch.planning import QUEUES
from broadcast.redisclient import redis_client

# kombu's Redis transport keeps a queue's prioritised messages in extra lists named queue + SEP + step.
_PRIORITY_SEP = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)


def queue_depths(redis_url: str) -> dict[str, int]:
    """Messages waiting in each Celery queue (Redis LLEN over the queue and its priority lists)."""
    client = redis_client(redis_url)
    pipe = client.pipeline()
    for q in QUEUES:
        pipe.llen(q)
        for step in _PRIORITY_STEPS:
            pipe.llen(f"{q}{_PRIORITY_SEP}{step}")
    lengths = pipe.execute()
    per = 1 + len(_PRIORITY_STEPS)
    return {q: int(sum(lengths[i * per : (i + 1) * per])) for i, q in enumerate(QUEUES)}


def check_workers(broker_url: str, *, timeout_s: float = 1.0) -> int:
    """How many Celery workers answered a ping within `timeout_s`."""
    app = _celery_for(broker_url)
    return len(app.control.ping(timeout=timeout_s) or [])


@lru_cache(maxsize=4)
def _celery_for(broker_url: str) -> Any:
    from celery import Celery

    app = Celery("broadcast-ops", broker=broker_url)
    app.conf.broker_connection_retry_on_startup = False
    app.conf.broker_connection_timeout = 1.0
    app.conf.broker_transport_options = {"socket_timeout": 1.0, "socket_connect_timeout": 1.0}
    return app

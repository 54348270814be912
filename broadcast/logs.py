"""Process-wide logging: plain text for people, JSON lines for log collectors, with the alert id attached.

`BROADCAST_LOG_FORMAT=json` switches every process (API, worker, beat) to one JSON object per line with
time, level, logger, message and, where known, `alert_id` (set for the duration of a Celery task whose first
argument is an alert id, or passed with `extra={"alert_id": ...}`).
"""

from __future__ import annotations

import inspect
import logging
import sys
from contextvars import ContextVar
from typing import Any

from broadcast.settings import Settings

current_alert_id: ContextVar[int | None] = ContextVar("current_alert_id", default=None)


class AlertIdFilter(logging.Filter):
    """Adds `alert_id` from the context to records that do not carry one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "alert_id", None) is None:
            record.alert_id = current_alert_id.get()
        return True


def json_formatter() -> logging.Formatter:
    """One JSON object per line (python-json-logger)."""
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s %(alert_id)s %(process)d",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        timestamp=False,
    )


def configure_logging(settings: Settings, *, stream: Any = None) -> None:
    """Install one handler on the root logger in the configured format and level (idempotent)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(AlertIdFilter())
    if settings.log_format == "json":
        handler.setFormatter(json_formatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_broadcast", False)]:
        root.removeHandler(old)
    handler._broadcast = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "celery"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True


def _alert_arg(task: Any, args: Any, kwargs: Any) -> int | None:
    if "alert_id" in (kwargs or {}):
        return int(kwargs["alert_id"])
    try:
        params = list(inspect.signature(task.run).parameters)
    except (TypeError, ValueError):
        return None
    if params and params[0] == "alert_id" and args:
        return int(args[0])
    return None


def install_task_context() -> None:
    """Set `current_alert_id` while a Celery task about one alert runs."""
    from celery.signals import task_postrun, task_prerun

    @task_prerun.connect(weak=False)
    def _bind(task: Any = None, args: Any = None, kwargs: Any = None, **_: Any) -> None:
        try:
            current_alert_id.set(_alert_arg(task, args, kwargs))
        except (TypeError, ValueError):
            current_alert_id.set(None)

    @task_postrun.connect(weak=False)
    def _unbind(**_: Any) -> None:
        current_alert_id.set(None)

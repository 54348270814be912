"""The Celery app reads no settings at import: a process may import the worker and every task module before its
environment is complete (tests, tools), and the settings are read when the app is first configured."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from broadcast.settings import Settings
from broadcast.worker import TASK_MODULES, create_celery

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_worker_and_its_tasks_reads_no_settings() -> None:
    # Settings that cannot load: reading them at import would raise.
    env = {**os.environ, "BROADCAST_ENVIRONMENT": "not-an-environment", "PYTHONPATH": str(ROOT)}
    code = (
        "import importlib, broadcast.worker as w\n"
        "for m in w.TASK_MODULES: importlib.import_module(m)\n"
        "print('configured' if w.celery.configured else 'not configured')\n"
        "try:\n"
        "    w.celery.conf.broker_url\n"
        "except Exception as exc:\n"
        "    print('read at first use:', type(exc).__name__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["not configured", "read at first use: ValidationError"]


def test_an_app_for_given_settings_takes_their_broker_and_schedule() -> None:
    app = create_celery(Settings(environment="test", broker_url="redis://127.0.0.1:6379/9", bmkg_sources=["x"]))
    try:
        assert app.conf.broker_url == "redis://127.0.0.1:6379/9"
        assert app.conf.task_acks_late and app.conf.worker_prefetch_multiplier == 1
        assert "bmkg-poll" in app.conf.beat_schedule and list(app.conf.include) == TASK_MODULES
    finally:
        app.close()

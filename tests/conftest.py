"""Shared fixtures: fresh migrated databases (SQLite and the machine's PostgreSQL) and Redis.

Every test that needs a database gets a brand-new one cloned from a migrated template, so
commits are real (a Celery worker in another thread or process sees them) and tests never
share rows.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


def _worker_redis_url(base: str) -> str:
    """The test Redis database of this process: `base` itself, or under pytest-xdist one database per worker
    counting down from `base` (gw0 -> base, gw1 -> base - 1, ...), so parallel workers never empty each other's."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return base
    head, _, db = base.rpartition("/")
    index = int(db or 0) - int(worker[2:])
    if index < 0:
        raise RuntimeError(f"BROADCAST_TEST_REDIS_URL={base}: too few Redis databases below it for worker {worker}")
    return f"{head}/{index}"


# Processes this suite starts (workers, uvicorn, beat) and the in-process Celery app, which reads its settings when
# first configured (never at import), use a test-only Redis database.
TEST_REDIS_URL = _worker_redis_url(os.environ.get("BROADCAST_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"))
os.environ["BROADCAST_BROKER_URL"] = TEST_REDIS_URL
os.environ.setdefault("BROADCAST_ENVIRONMENT", "test")
for _k in [k for k in os.environ if k.startswith(("BROADCAST_TWILIO", "BROADCAST_X__", "BROADCAST_SMSGATEWAY"))]:
    del os.environ[_k]

import sqlalchemy as sa  # noqa: E402

from broadcast import migrate  # noqa: E402

PG_ADMIN_URL = os.environ.get("BROADCAST_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, host: str | None = None, port: int | None = None, *, present: bool | None = None) -> None:
    """The one gate for everything a test needs from its environment: a service listening on host:port, or
    anything else (`present`: a program on PATH, an installed module). Absent, the test is skipped locally;
    under CI a missing one is a failure, never a silent skip."""
    if present is None:
        if host is None or port is None:
            raise TypeError("require_service needs host and port, or present=")
        present, where = _reachable(host, port), f"reachable on {host}:{port}"
    else:
        where = "available"
    if present:
        return
    if IN_CI:
        pytest.fail(f"{name} is not {where}; CI must provide it")
    pytest.skip(f"{name} not {where}")


def _pg_url(dbname: str) -> str:
    return str(sa.make_url(PG_ADMIN_URL).set(database=dbname).render_as_string(hide_password=False))


def _pg_admin() -> sa.Engine:
    return sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)


class Databases:
    """Makes fresh migrated databases of one kind by cloning a template migrated once."""

    def __init__(self, kind: str, tmp: Path) -> None:
        self.kind = kind
        self.tmp = tmp
        self.created: list[str] = []
        self.run_id = uuid.uuid4().hex[:8]
        if kind == "sqlite":
            self.template = tmp / "template.sqlite3"
            migrate.upgrade(f"sqlite:///{self.template}")
        else:
            self.template_name = f"bcast_tpl_{self.run_id}"
            with _pg_admin().connect() as c:
                c.execute(sa.text(f'CREATE DATABASE "{self.template_name}"'))
            self.created.append(self.template_name)
            migrate.upgrade(_pg_url(self.template_name))

    def empty(self) -> str:
        """A URL of a new database with no schema (for migration tests)."""
        name = f"bcast_{self.run_id}_{len(self.created)}"
        if self.kind == "sqlite":
            return f"sqlite:///{self.tmp / f'{name}_{uuid.uuid4().hex[:6]}.sqlite3'}"
        with _pg_admin().connect() as c:
            c.execute(sa.text(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return _pg_url(name)

    def fresh(self) -> str:
        """A URL of a new database at the newest schema."""
        name = f"bcast_{self.run_id}_{len(self.created)}"
        if self.kind == "sqlite":
            path = self.tmp / f"{name}_{uuid.uuid4().hex[:6]}.sqlite3"
            shutil.copyfile(self.template, path)
            return f"sqlite:///{path}"
        with _pg_admin().connect() as c:
            c.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{self.template_name}"'))
        self.created.append(name)
        return _pg_url(name)

    def cleanup(self) -> None:
        from broadcast.db import get_engine

        get_engine.cache_clear()
        if self.kind == "postgresql":
            with _pg_admin().connect() as c:
                for name in reversed(self.created):
                    c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqlite_dbs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    dbs = Databases("sqlite", tmp_path_factory.mktemp("sqlite"))
    yield dbs
    dbs.cleanup()


@pytest.fixture(scope="session")
def pg_dbs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    dbs = Databases("postgresql", tmp_path_factory.mktemp("pg"))
    yield dbs
    dbs.cleanup()


@pytest.fixture(params=["sqlite", "postgresql"])
def dbs(request: pytest.FixtureRequest) -> Databases:
    """Run the test once on SQLite and once on PostgreSQL."""
    return request.getfixturevalue("sqlite_dbs" if request.param == "sqlite" else "pg_dbs")


@pytest.fixture
def db_url(dbs: Databases) -> Iterator[str]:
    url = dbs.fresh()
    yield url
    # The app and tasks share one cached engine per URL (broadcast.db.get_engine): close its pooled connections,
    # or a long run keeps one PostgreSQL connection per test database open and exhausts max_connections.
    from broadcast.db import get_engine

    get_engine(url).dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    from broadcast.db import make_engine

    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def session(engine: sa.Engine) -> Iterator[sa.orm.Session]:
    from broadcast.db import session_factory

    with session_factory(engine)() as s:
        yield s


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The test Redis database, emptied before and after the test."""
    import redis

    require_service("Redis", "127.0.0.1", 6379)
    client = redis.Redis.from_url(TEST_REDIS_URL)
    client.flushdb()
    yield TEST_REDIS_URL
    client.flushdb()


# The instant the clock-dependent tests (marked `clock`) run at, ISO-8601 with its offset; unset, the real now.
# .ci/run runs them at fixed dates that once broke things: the 1st of a month and a month's end in WIB (UTC is
# still in the other month), day 7 (a one-digit day), 31 December 23:59 WIB. Several instants, comma-separated,
# run each clock test once per instant in one session (one start-up, spread over the xdist workers).
TEST_NOWS = [s.strip() for s in os.environ.get("BROADCAST_TEST_NOW", "").split(",") if s.strip()]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "clock(tick=False): reads the clock; runs at BROADCAST_TEST_NOW (or now), frozen unless tick=True",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if len(TEST_NOWS) > 1 and metafunc.definition.get_closest_marker("clock") is not None:
        metafunc.parametrize("clock_instant", TEST_NOWS, ids=[f"at-{now}" for now in TEST_NOWS])


# Slowest first, so the long browser and service tests do not end up alone at the end of a run (pytest-xdist
# hands out whole files in this order, --no-loadscope-reorder): e2e, then reliability, integration, unit.
_RANK = {"e2e": 0, "reliability": 1, "integration": 2}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        parts = item.nodeid.split("/")
        return _RANK.get(parts[1], 3) if len(parts) > 2 and parts[0] == "tests" else 3

    items.sort(key=rank)  # stable: the order within a directory is kept


@pytest.fixture
def clock_instant() -> str:
    """The instant a `clock` test runs at ('' for now); parametrized when BROADCAST_TEST_NOW lists several."""
    return TEST_NOWS[0] if TEST_NOWS else ""


@pytest.fixture(autouse=True)
def _test_clock(request: pytest.FixtureRequest, clock_instant: str) -> Iterator[None]:
    """Tests marked `clock` run at an injected instant: BROADCAST_TEST_NOW, else the moment they start; frozen
    there (so a run cannot straddle a day or month boundary) unless the marker says tick=True."""
    marker = request.node.get_closest_marker("clock")
    if marker is None:
        yield
        return
    from datetime import UTC, datetime

    import time_machine

    start = datetime.fromisoformat(clock_instant) if clock_instant else datetime.now(UTC)
    if start.tzinfo is None:
        raise ValueError("BROADCAST_TEST_NOW needs an offset, e.g. 2027-03-01T00:30:00+07:00")
    with time_machine.travel(start, tick=bool(marker.kwargs.get("tick", False))):
        yield


@pytest.fixture(autouse=True)
def _no_twilio_region(monkeypatch: pytest.MonkeyPatch) -> None:
    # TWILIO_REGION/TWILIO_EDGE rewrite the SDK's host and would bypass the local fake (REFERENCE §1).
    monkeypatch.delenv("TWILIO_REGION", raising=False)
    monkeypatch.delenv("TWILIO_EDGE", raising=False)

# The recorder behind RELIABILITY.md: `record` fixture and the session hook that writes the records.
from tests.recorder import (  # noqa: E402, F401
    pytest_runtest_makereport,
    pytest_sessionfinish,
    pytest_sessionstart,
    pytest_testnodedown,
    record,
)

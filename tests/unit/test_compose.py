"""docker-compose.yml: the production shape with health checks, and a valid file."""

import re
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


SERVICE_KEYS = {
    "image", "build", "restart", "environment", "depends_on", "command", "ports", "volumes", "healthcheck",
}
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?+][^}]*)?\}|\$\$|\$([A-Za-z_][A-Za-z0-9_]*)")
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


def compose_problems(text: str) -> list[str]:
    """What `docker compose config` would refuse in this file, checked without docker: YAML that parses (with its
    anchors and merge keys), services that each have an image or a build, known keys, depends_on naming existing
    services with valid conditions, `${VAR...}` interpolation that is well formed, health checks with a test,
    and named volumes that are declared."""
    problems: list[str] = []
    try:
        spec = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return [f"not YAML: {exc}"]
    if not isinstance(spec, dict) or not isinstance(spec.get("services"), dict):
        return ["no services mapping"]
    services: dict = spec["services"]
    volumes = set((spec.get("volumes") or {}).keys())
    for bad in re.findall(r"\$\{[^}]*\}", text):
        if not INTERPOLATION.fullmatch(bad):
            problems.append(f"bad interpolation {bad}")
    if text.count("${") != len(re.findall(r"\$\{[^}]*\}", text)):
        problems.append("an unterminated ${")
    for name, svc in services.items():
        if not isinstance(svc, dict):
            problems.append(f"{name}: not a mapping")
            continue
        if "image" not in svc and "build" not in svc:
            problems.append(f"{name}: neither image nor build")
        problems += [f"{name}: unknown key {k}" for k in svc if k not in SERVICE_KEYS]
        deps = svc.get("depends_on") or {}
        for dep, how in (deps.items() if isinstance(deps, dict) else ((d, {}) for d in deps)):
            if dep not in services:
                problems.append(f"{name}: depends on unknown service {dep}")
            if dep == name:
                problems.append(f"{name}: depends on itself")
            if isinstance(how, dict) and how.get("condition", "service_started") not in CONDITIONS:
                problems.append(f"{name}: unknown condition {how.get('condition')} for {dep}")
        check = svc.get("healthcheck")
        if check is not None and not (isinstance(check, dict) and check.get("test")):
            problems.append(f"{name}: healthcheck without a test")
        for vol in svc.get("volumes") or []:
            source = str(vol).split(":", 1)[0]
            if not source.startswith((".", "/", "~")) and source not in volumes:
                problems.append(f"{name}: volume {source} is not declared")
        for port in svc.get("ports") or []:
            if not re.fullmatch(r"(\d+(-\d+)?:)?\d+(-\d+)?(/(tcp|udp))?", str(port)):
                problems.append(f"{name}: bad port {port}")
    return problems


def test_compose_config_is_valid():
    """`docker compose config` where docker is installed; otherwise the same file checked as YAML (never a skip)."""
    compose = _compose()
    if compose is not None:
        result = subprocess.run([*compose, "config", "-q"], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    assert compose_problems((ROOT / "docker-compose.yml").read_text()) == []


@pytest.mark.parametrize(
    ("broken", "problem"),
    [
        ("depends_on:\n      postgres:", "depends_on:\n      postgress:"),
        ("${POSTGRES_PASSWORD:-broadcast}@", "${POSTGRES PASSWORD}@"),
        ("- beatdata:/var/lib/broadcast", "- beatdta:/var/lib/broadcast"),
        ("image: redis:7-alpine", "imag: redis:7-alpine"),
        ("condition: service_healthy", "condition: healthy"),
    ],
)
def test_the_yaml_check_finds_what_compose_would_refuse(broken, problem):
    text = (ROOT / "docker-compose.yml").read_text()
    assert broken in text
    assert compose_problems(text.replace(broken, problem, 1))

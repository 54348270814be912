"""A real headless Chromium (Debian's, driven by Playwright) loads a published exercise's page."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import httpx
import pytest

from tests.conftest import require_service
from tests.e2e.test_serve import login
from tests.factories import alert_payload

pytestmark = pytest.mark.e2e
CHROMIUM = os.environ.get("BROADCAST_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def browser():
    require_service("playwright (pip install -e '.[test]')", present=importlib.util.find_spec("playwright") is not None)
    require_service(f"Chromium ({CHROMIUM}; CI installs Debian's chromium)",
                    present=Path(CHROMIUM).exists() or shutil.which("chromium") is not None)
    import playwright.sync_api as playwright
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def test_exercise_page_shows_banner_and_polygon_on_the_map(serve_factory, browser):
    served = serve_factory()
    base = served.base
    op, apv = login(base, "op.palu"), login(base, "apv.sulteng")
    alert = httpx.post(f"{base}/api/v1/alerts", json=alert_payload("Exercise"), headers=op).json()
    httpx.post(f"{base}/api/v1/alerts/{alert['id']}/submit", headers=op)
    assert httpx.post(f"{base}/api/v1/alerts/{alert['id']}/approve", headers=apv).status_code == 202
    page_url = f"{base}/peringatan/{alert['identifier']}"
    for _ in range(100):
        if httpx.get(page_url).status_code == 200:
            break
        __import__("time").sleep(0.1)

    page = browser.new_page(viewport={"width": 412, "height": 900})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(page_url)
    page.wait_for_selector(".map[data-ready='true']", timeout=15_000)
    banner = page.locator(".banner-exercise")
    assert banner.is_visible() and "LATIHAN" in banner.inner_text()
    polygons = page.locator("path.target-area")
    assert polygons.count() >= 1
    box = polygons.first.bounding_box()
    assert box and box["width"] > 20 and box["height"] > 20  # drawn, not a dot
    assert page.locator("path.leaflet-interactive").count() > polygons.count()  # kabupaten outlines too
    assert all(u.startswith(base) for u in requests)  # nothing from a CDN or tile server
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "alert-page-exercise.png"), full_page=True)
    page.close()

"""Every screen a person reads, in a real Chromium against `broadcast serve`, on a desktop (1280x900) and a phone
(390x844): screenshots under test-artifacts/screens/, no horizontal overflow at 360 and 390 px, and axe-core
(WCAG 2.1 A/AA) finding no serious or critical violation at 390 px on every public page and the console."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import demo_password
from tests.e2e.test_browser import ARTIFACTS, browser  # noqa: F401 - the Chromium fixture
from tests.e2e.test_serve import login
from tests.factories import alert_payload

pytestmark = pytest.mark.e2e
AXE = Path(__file__).resolve().parents[1] / "vendor" / "axe-core" / "axe.min.js"
SHOTS = ARTIFACTS / "screens"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
SMALL_PHONE = {"width": 360, "height": 780}
WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]

# What the page shows once it is drawn (maps report data-ready when their layers are in).
READY = {
    "home": ".map[data-ready='true']",
    "area": ".map[data-ready='true']",
    "alert": ".map[data-ready='true']",
    "lapor": "#pin-map[data-ready='true']",
    "composer": "#composer-map[data-ready='true']",
    "review": ".sms-preview",
    "progress": "#progress[data-done='true']",
    "pusdalops": "#ops-map[data-ready='true']",
}


def _publish(base: str, status: str = "Exercise", **overrides: object) -> dict:
    op, apv = login(base, "op.palu"), login(base, "apv.sulteng")
    alert = httpx.post(f"{base}/api/v1/alerts", json=alert_payload(status, **overrides), headers=op).json()
    assert httpx.post(f"{base}/api/v1/alerts/{alert['id']}/submit", headers=op).status_code == 200
    assert httpx.post(f"{base}/api/v1/alerts/{alert['id']}/approve", headers=apv).status_code == 202
    for _ in range(200):
        if httpx.get(f"{base}/peringatan/{alert['identifier']}").status_code == 200:
            return alert
        time.sleep(0.1)
    raise AssertionError("alert never published")


def _submitted(base: str) -> dict:
    op = login(base, "op.palu")
    alert = httpx.post(f"{base}/api/v1/alerts", json=alert_payload("Exercise"), headers=op).json()
    assert httpx.post(f"{base}/api/v1/alerts/{alert['id']}/submit", headers=op).status_code == 200
    return alert


def _report(base: str) -> None:
    form = httpx.get(f"{base}/lapor")
    token = form.text.split('name="token" value="')[1].split('"')[0]
    sent = httpx.post(
        f"{base}/lapor",
        data={"text": "Banjir selutut di Kelurahan Talise, Palu", "token": token, "lat": "-0.8737", "lon": "119.8707"},
    )
    assert sent.status_code == 200 and 'id="lapor-done"' in sent.text


def _signed_in(browser, base: str, username: str, viewport: dict):  # noqa: F811 - browser is the fixture
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.goto(f"{base}/masuk")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", demo_password(base))
    page.click("form.stack button[type=submit]")
    page.wait_for_url(f"{base}/konsol")
    return context, page


def _overflow(page) -> dict:
    """How far the page reaches past the viewport's right edge, and the widest offenders."""
    return page.evaluate(
        """() => {
          const w = document.documentElement.clientWidth;
          const wide = [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > w + 1 && !e.closest('.leaflet-pane, .leaflet-control-container'))
            .slice(0, 5).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right));
          return {scroll: document.documentElement.scrollWidth, width: w, wide};
        }"""
    )


def _axe(page) -> list[dict]:
    # The pages' CSP allows only our own scripts: evaluate the vendored source through the DevTools protocol
    # (which the CSP does not govern) instead of adding a script tag.
    page.evaluate(AXE.read_text(encoding="utf-8"))
    result = page.evaluate("(tags) => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG)
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"][:3]]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def _visit(page, url: str, name: str) -> None:
    page.goto(url)
    page.wait_for_load_state("networkidle")
    if name in READY:
        page.wait_for_selector(READY[name], timeout=60_000)
    page.wait_for_timeout(300)  # let Leaflet finish drawing before the picture


def test_every_screen_on_desktop_and_phone(serve_factory, browser):  # noqa: F811
    served = serve_factory(BROADCAST_REPORT_FORM_MIN_SECONDS="0")
    base = served.base
    published = _publish(base)
    follow_ups = httpx.get(f"{base}/api/v1/alerts/{published['id']}", headers=login(base, "op.palu")).json()
    assert follow_ups["state"] == "published"
    waiting = _submitted(base)
    _report(base)

    public = {
        "home": "/",
        "area": "/wilayah/72.71",
        "alert": f"/peringatan/{published['identifier']}",
        "cek": "/cek",
        "lapor": "/lapor",
        "transparansi": "/transparansi",
        "transparansi-latihan": "/transparansi/latihan",
        "klarifikasi": "/klarifikasi",
        "masuk": "/masuk",
        "home-en": "/?lang=en",
    }
    staff = {
        "konsol": "/konsol",
        "composer": "/konsol/baru",
        "review": f"/konsol/peringatan/{waiting['id']}",
        "progress": f"/konsol/peringatan/{published['id']}/progres",
        "pusdalops": "/pusdalops",
        "pusdalops-en": "/pusdalops?lang=en",
    }
    SHOTS.mkdir(parents=True, exist_ok=True)
    problems: dict[str, object] = {}
    for viewport in (DESKTOP, PHONE, SMALL_PHONE):
        anonymous = browser.new_context(viewport=viewport)
        pages = [(anonymous.new_page(), public)]
        context, analyst = _signed_in(browser, base, "apv.sulteng", viewport)
        pages.append((analyst, staff))
        for page, urls in pages:
            errors: list[str] = []
            page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
            for name, path in urls.items():
                errors.clear()
                try:
                    _visit(page, base + path, name.removesuffix("-en"))
                finally:
                    if errors:
                        problems[f"script errors {name} at {viewport['width']} px"] = list(errors)
                assert not errors, problems
                if viewport is not SMALL_PHONE:
                    page.screenshot(path=str(SHOTS / f"{name}-{viewport['width']}.png"), full_page=True)
                if viewport is DESKTOP:
                    continue
                seen = _overflow(page)
                if seen["scroll"] > seen["width"]:
                    problems[f"overflow {name} at {viewport['width']} px"] = seen
                if viewport is PHONE:
                    violations = _axe(page)
                    if violations:
                        problems[f"axe {name}"] = violations
        anonymous.close()
        context.close()
    (SHOTS / "problems.json").write_text(json.dumps(problems, indent=1, ensure_ascii=False))
    assert not problems, f"see {SHOTS / 'problems.json'}: {sorted(problems)}"


def test_phone_shows_the_alert_before_the_map_and_links_the_report_form(serve_factory, browser):  # noqa: F811
    served = serve_factory()
    base = served.base
    published = _publish(base)
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    for path in ("/", f"/peringatan/{published['identifier']}", "/wilayah/72.71"):
        _visit(page, base + path, "alert")
        headline = page.locator("h1, .alert-card h2").filter(has_text=re.compile("Banjir di Kota Palu")).first
        assert headline.bounding_box()["y"] < page.locator(".map").first.bounding_box()["y"], path
        assert headline.bounding_box()["y"] < PHONE["height"], path  # readable without scrolling
        cta = page.locator(".report-cta a")
        assert cta.count() == 1 and "Laporkan kondisi di sekitar Anda" in cta.inner_text()
        assert page.locator("header.site a[href='/lapor']").count() == 1
    for path in ("/cek", "/transparansi", "/klarifikasi", "/masuk", "/lapor"):
        page.goto(base + path)
        assert page.locator("header.site a[href='/lapor']").count() == 1, path
    page.goto(base + "/?lang=en")
    assert page.locator("header.site a[href='/lapor?lang=en']").count() == 1
    context.close()


def test_review_preview_frame_shows_the_public_page(serve_factory, browser):  # noqa: F811
    served = serve_factory()
    base = served.base
    waiting = _submitted(base)
    context, page = _signed_in(browser, base, "apv.sulteng", DESKTOP)
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text) if "frame-ancestors" in m.text or "X-Frame" in m.text else None)
    page.goto(f"{base}/konsol/peringatan/{waiting['id']}")
    page.locator("summary", has_text="Lihat halaman").click()
    frame = page.frame_locator("iframe.page-preview")
    assert "LATIHAN" in frame.locator(".banner-exercise").inner_text(timeout=10_000)
    assert "Banjir di Kota Palu" in frame.locator("h1").first.inner_text()
    assert blocked == []
    page.locator("iframe.page-preview").screenshot(path=str(ARTIFACTS / "review-page-preview.png"))
    context.close()


def test_sign_in_from_the_operations_centre_returns_there(serve_factory, browser):  # noqa: F811
    served = serve_factory()
    base = served.base
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    page.goto(f"{base}/pusdalops?hours=12")
    assert page.url == f"{base}/masuk?next=%2Fpusdalops%3Fhours%3D12"
    page.fill("input[name=username]", "analis")
    page.fill("input[name=password]", demo_password(base))
    page.click("form.stack button[type=submit]")
    page.wait_for_url(f"{base}/pusdalops?hours=12")
    page.wait_for_selector("#ops-map[data-ready='true']", timeout=20_000)
    context.close()


def test_api_docs_work_offline(serve_factory, browser):  # noqa: F811
    served = serve_factory()
    base = served.base
    page = browser.new_page(viewport=DESKTOP)
    requests: list[str] = []  # loaded; ReDoc's CDN logo is asked for but refused by the docs' CSP
    page.on("requestfinished", lambda r: requests.append(r.url))
    page.goto(f"{base}/api/docs")
    page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
    assert "Broadcast" in page.locator(".swagger-ui .title").first.inner_text()
    page.screenshot(path=str(ARTIFACTS / "api-docs.png"))
    page.goto(f"{base}/api/redoc")
    page.wait_for_selector("redoc [role=navigation], .menu-content", timeout=30_000)
    outside = [u for u in requests if not u.startswith((base, "data:", "blob:"))]
    assert outside == []
    icon = httpx.get(f"{base}/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/x-icon" and icon.content[:4] == b"\0\0\1\0"
    page.goto(f"{base}/")
    assert page.locator("link[rel=icon][href='/favicon.ico']").count() == 1
    page.close()

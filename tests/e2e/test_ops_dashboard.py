"""A real Chromium shows the operations-centre dashboard and updates it live when a citizen's report arrives."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from tests.e2e.conftest import demo_password
from tests.e2e.test_browser import ARTIFACTS, browser  # noqa: F401 - the fixture

pytestmark = pytest.mark.e2e


def test_dashboard_updates_live_when_a_report_arrives(serve_factory, browser):  # noqa: F811
    served = serve_factory(BROADCAST_REPORT_FORM_MIN_SECONDS="0")
    base = served.base
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(f"{base}/masuk")
    page.fill("input[name=username]", "analis")
    page.fill("input[name=password]", demo_password(base))
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/konsol")
    page.goto(f"{base}/pusdalops")
    page.wait_for_selector("#ops-map[data-ready='true']", timeout=15_000)
    page.wait_for_selector("#live-status[data-live='true']", timeout=15_000)
    assert "PetaBencana" not in page.inner_text(".credit")  # no demo data loaded: no demo credit
    assert page.locator("path.report-marker").count() == 0

    form = httpx.get(f"{base}/lapor")
    token = form.text.split('name="token" value="')[1].split('"')[0]
    sent = httpx.post(f"{base}/lapor", data={"text": "Banjir sepinggang di Kampung Melayu, Jatinegara",
                                             "token": token, "lat": "-6.2237", "lon": "106.8661"})
    assert sent.status_code == 200 and 'id="lapor-done"' in sent.text
    report_id = sent.text.split("<strong>")[1].split("</strong>")[0]

    page.wait_for_selector(f"tr[data-report='{report_id}']", timeout=30_000)
    page.wait_for_selector("path.report-marker", timeout=30_000)
    assert page.inner_text("#live-count") == "1"
    # The live row shows the local time with its zone and the source's label, as the server-rendered rows do.
    live_time = page.inner_text(f"tr[data-report='{report_id}'] td:nth-child(2)")
    live_source = page.inner_text(f"tr[data-report='{report_id}'] td:nth-child(3)")
    assert re.fullmatch(r"\d{1,2} \w{3} \d{2}\.\d{2} WIB", live_time), live_time
    assert live_source != "web", live_source
    # once the worker enriched it, the incident appears on the map too
    page.wait_for_selector("path.incident-area", timeout=60_000)
    page.wait_for_selector("#incidents tr[data-incident]", timeout=10_000)
    assert all(u.startswith(base) for u in requests)  # nothing from a CDN or tile server
    ARTIFACTS.mkdir(exist_ok=True)
    time.sleep(0.5)
    page.screenshot(path=str(ARTIFACTS / "ops-dashboard-live.png"), full_page=True)
    page.reload()
    assert page.inner_text(f"tr[data-report='{report_id}'] td:nth-child(2)") == live_time
    assert page.inner_text(f"tr[data-report='{report_id}'] td:nth-child(3)") == live_source
    page.close()

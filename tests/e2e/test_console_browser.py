"""The operator console in a real headless Chromium against `broadcast serve`: an operator composes a flood alert
for a kecamatan in Grobogan by clicking the map, sees SMS segment counts and submits; an approver reviews the
previews, confirms and watches delivery reach 100% in outbox mode. Screenshots go to test-artifacts/."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import demo_password
from tests.e2e.test_browser import ARTIFACTS, browser  # noqa: F401 - the Chromium fixture
from tests.e2e.test_serve import login
from tests.factories import alert_payload

pytestmark = pytest.mark.e2e
KECAMATAN = "33.15.01"  # the demo puts two subscribers in its first two desa
VIEWPORT = {"width": 1280, "height": 800}


def sign_in(browser, base: str, username: str):  # noqa: F811 - browser is the fixture
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.goto(f"{base}/masuk")
    page.get_by_label(re.compile("Nama pengguna|Username", re.I)).fill(username)
    page.get_by_label(re.compile("Kata sandi|Password", re.I)).fill(demo_password(base))
    page.locator("form button[type=submit]").click()
    page.wait_for_url(f"{base}/konsol")
    return context, page


def theme(page) -> dict[str, str]:
    return page.evaluate(
        """() => { const b = getComputedStyle(document.body), n = getComputedStyle(document.querySelector('.status-banner'));
                   return {cls: document.body.className, borderImage: b.borderImageSource, borderTop: b.borderTopColor,
                           bodyBg: b.backgroundColor, bannerBg: n.backgroundColor + n.backgroundImage,
                           banner: document.querySelector('.status-banner').innerText}; }"""
    )


def test_compose_click_map_submit_approve_and_watch_progress(serve_factory, browser):  # noqa: F811
    served = serve_factory()
    base = served.base
    ARTIFACTS.mkdir(exist_ok=True)
    requests: list[str] = []

    # Operator: compose.
    op_ctx, page = sign_in(browser, base, "op.grobogan")
    page.on("request", lambda r: requests.append(r.url))
    page.goto(f"{base}/konsol/baru")
    page.wait_for_selector("#composer-map[data-ready='true']", timeout=20_000)
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea')]
                 .filter(e => e.type !== 'hidden' && !e.labels.length && !e.getAttribute('aria-label')).map(e => e.id)"""
    )
    assert unlabelled == []  # every control has a label (screen readers, and a bigger click target)
    page.get_by_label(re.compile("LATIHAN / Exercise")).check()
    exercise = theme(page)
    assert "status-Exercise" in exercise["cls"] and "LATIHAN" in exercise["banner"]
    page.get_by_label(re.compile("Jenis bencana")).select_option("banjir")
    page.locator("#hf-lokasi").fill("Kecamatan Kedungjati, Kabupaten Grobogan")
    page.locator("#hf-ketinggian_air").fill("50-100 cm")
    page.locator("#fill-hazard").click()
    # expect() polls through Playwright's selector engine: the page's CSP forbids the eval wait_for_function needs.
    expect(page.locator("#id-headline")).to_have_value(re.compile("Kedungjati"))

    # Click the kecamatan on the map (a point Leaflet draws inside it).
    page.locator("#composer-map").scroll_into_view_if_needed()
    point = page.evaluate(f"window.composer.pointFor('{KECAMATAN}')")
    assert point, "kecamatan not drawn on the map"
    page.mouse.click(point["x"], point["y"])
    page.wait_for_selector(f"#selected-areas li:has-text('{KECAMATAN}')")
    page.wait_for_selector("#reach[data-subscribers]")
    assert page.locator("#reach").get_attribute("data-subscribers") == "2"
    assert page.locator(f"path.area-{KECAMATAN.replace('.', '-')}.selected").count() == 1

    # Previews come from the server's renderers: SMS per language with encoding and segments.
    page.wait_for_selector("#composer[data-preview='ready']", timeout=20_000)
    segments = page.locator(".sms-preview .segments")
    assert segments.count() == 2
    assert all(int(segments.nth(i).get_attribute("data-segments")) >= 1 for i in range(2))
    assert "GSM-7" in page.locator(".sms-preview").first.inner_text()
    assert "LATIHAN" in page.locator(".sms-preview pre").first.inner_text()
    assert page.locator(".x-preview").count() >= 1
    # The budget follows severity (a flood is Severe: up to 3 segments) and the unsaved code is a placeholder.
    assert "maks/max 3 segmen (tingkat Parah" in page.locator(".sms-preview .budget").first.inner_text()
    assert page.locator(".placeholders-note").is_visible()
    page.screenshot(path=str(ARTIFACTS / "console-composer-exercise.png"), full_page=True)

    # The Actual theme is visibly different; switching back restores the exercise theme.
    page.get_by_label(re.compile("NYATA / Actual")).check()
    actual = theme(page)
    assert "status-Actual" in actual["cls"] and "PERINGATAN NYATA" in actual["banner"]
    assert actual["borderImage"] != exercise["borderImage"] and actual["bannerBg"] != exercise["bannerBg"]
    assert actual["bodyBg"] != exercise["bodyBg"]
    page.screenshot(path=str(ARTIFACTS / "console-composer-actual.png"))
    page.get_by_label(re.compile("LATIHAN / Exercise")).check()
    assert theme(page) == exercise

    # Tablet width: one column, nothing wider than the screen, the map still usable.
    page.set_viewport_size({"width": 820, "height": 1180})
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert page.locator("#composer-map").bounding_box()["width"] > 600
    page.screenshot(path=str(ARTIFACTS / "console-composer-tablet.png"))
    page.set_viewport_size(VIEWPORT)

    page.locator("#submit-alert").click()
    page.wait_for_url(re.compile(r"/konsol/peringatan/\d+$"), timeout=20_000)
    alert_id = int(page.url.rsplit("/", 1)[1])
    assert page.locator("#review").get_attribute("data-state") == "submitted"
    op_ctx.close()

    # Approver: queue → review with previews → confirm naming status and recipients → progress.
    apv_ctx, page = sign_in(browser, base, "apv.grobogan")
    page.goto(f"{base}/konsol/persetujuan")
    page.locator(f"a[href='/konsol/peringatan/{alert_id}']").click()
    page.wait_for_selector(".sms-preview .segments")
    page.keyboard.press("Tab")  # keyboard users reach the menu first, then the decision
    assert page.evaluate("document.activeElement.tagName") == "A"
    assert page.locator(".sms-preview").count() == 2 and "status-Exercise" in theme(page)["cls"]
    page.screenshot(path=str(ARTIFACTS / "console-approval.png"), full_page=True)
    page.locator("#approve").click()
    dialog = page.locator("#confirm-dialog")
    assert dialog.is_visible()
    assert "Kirim LATIHAN ke 2 penerima?" in dialog.inner_text()
    page.screenshot(path=str(ARTIFACTS / "console-approval-confirm.png"))
    page.locator("#confirm-yes").click()
    page.wait_for_url(f"{base}/konsol/peringatan/{alert_id}/progres", timeout=20_000)
    page.wait_for_selector("#progress[data-done='true']", timeout=90_000)
    assert page.locator("#overall").get_attribute("data-percent") == "100"
    assert page.locator("#progress-rows tr").count() == 3  # sms, social, web
    page.screenshot(path=str(ARTIFACTS / "console-progress.png"), full_page=True)

    # One click starts an Update from the original: the composer opens prefilled, status locked to the original's.
    page.reload()
    page.locator("[data-follow-up=update]").click()
    page.wait_for_url(re.compile(r"/konsol/peringatan/\d+/ubah$"), timeout=20_000)
    assert "Kedungjati" in page.locator("#id-headline").input_value()
    assert page.locator("input[name=status][value=Exercise]").is_checked()
    assert page.locator("input[name=status][value=Actual]").is_disabled()
    page.wait_for_selector(f"#selected-areas li:has-text('{KECAMATAN}')")

    # An Actual alert: the approver sees the real-alert theme and confirm wording (not approved: non-production).
    op = login(base, "op.grobogan")
    payload = alert_payload("Actual", codes=[KECAMATAN])
    actual_id = httpx.post(f"{base}/api/v1/alerts", json=payload, headers=op).json()["id"]
    assert httpx.post(f"{base}/api/v1/alerts/{actual_id}/submit", headers=op).status_code == 200
    page.goto(f"{base}/konsol/peringatan/{actual_id}")
    real = theme(page)
    assert "status-Actual" in real["cls"] and real["borderImage"] == "none"
    page.locator("#approve").click()
    assert "Kirim PERINGATAN NYATA ke 2 penerima?" in page.locator("#confirm-dialog").inner_text()
    page.screenshot(path=str(ARTIFACTS / "console-approval-actual-confirm.png"))
    page.locator("#confirm-no").click()
    assert not page.locator("#confirm-dialog").is_visible()
    apv_ctx.close()
    assert all(u.startswith(base) for u in requests)  # no CDN, no tile server


def test_draw_upload_keyboard_targeting_and_reject_with_reason(serve_factory, browser, tmp_path):  # noqa: F811
    served = serve_factory()
    base = served.base
    _, page = sign_in(browser, base, "op.grobogan")
    page.goto(f"{base}/konsol/baru")
    page.wait_for_selector("#composer-map[data-ready='true']", timeout=20_000)

    # Keyboard: the list under the map selects and drills down without a mouse.
    box = page.locator(f"#ck-{KECAMATAN.replace('.', '-')}")
    box.focus()
    page.keyboard.press("Space")
    page.wait_for_selector(f"#selected-areas li:has-text('{KECAMATAN}')")
    page.wait_for_selector("#reach[data-subscribers='2']")
    page.locator(f"#area-list li:has(#ck-{KECAMATAN.replace('.', '-')}) button").click()
    page.wait_for_selector("#composer[data-level='desa']")
    box = page.locator(f"#ck-{KECAMATAN.replace('.', '-')}")
    assert box.count() == 0  # now listing the desa of the kecamatan
    page.locator(f"#selected-areas li:has-text('{KECAMATAN}') button").click()
    page.wait_for_selector("#reach:not([data-subscribers])")

    # Back up to the kabupaten, then draw a small polygon with four clicks around the kecamatan's inner point.
    page.locator("#area-trail button", has_text="Grobogan").click()
    page.wait_for_selector("#composer[data-level='kecamatan']")
    page.locator("#composer-map").scroll_into_view_if_needed()
    page.locator("#draw-polygon").click()
    centre = page.evaluate(f"window.composer.pointFor('{KECAMATAN}')")
    for dx, dy in ((-5, -5), (5, -5), (5, 5), (-5, 5)):
        page.mouse.click(centre["x"] + dx, centre["y"] + dy)
    page.locator("#finish-drawing").click()
    page.wait_for_selector("#selected-areas li:has-text('Polygon')")
    page.wait_for_selector("#reach[data-subscribers]")
    ring = page.evaluate("window.composer.state.drawn[0].coordinates[0]")
    assert len(ring) == 5  # four clicks, one vertex each, closed

    # Upload: a bad file says why; a GeoJSON file is added to the area.
    bad = tmp_path / "bad.geojson"
    bad.write_text('{"type": "Point", "coordinates": [110.9, -7.1]}')
    page.locator("#area-file").set_input_files(str(bad))
    page.wait_for_selector("#upload-status.fail")
    assert "poligon" in page.locator("#upload-status").inner_text()
    good = tmp_path / "area.geojson"
    good.write_text('{"type": "Polygon", "coordinates": [[[110.90, -7.10], [110.95, -7.10], [110.95, -7.05],'
                    ' [110.90, -7.05], [110.90, -7.10]]]}')
    page.locator("#area-file").set_input_files(str(good))
    page.wait_for_selector("#upload-status:has-text('geojson')")
    assert page.locator("#selected-areas li:has-text('Polygon')").count() == 2

    # Reject with a reason: the author sees it on the draft.
    op = login(base, "op.grobogan")
    alert_id = httpx.post(f"{base}/api/v1/alerts", json=alert_payload("Exercise", codes=[KECAMATAN]), headers=op).json()["id"]
    httpx.post(f"{base}/api/v1/alerts/{alert_id}/submit", headers=op)
    _, apv = sign_in(browser, base, "apv.grobogan")
    apv.goto(f"{base}/konsol/peringatan/{alert_id}")
    apv.get_by_label(re.compile("Tolak dengan alasan")).fill("Wilayah terlalu sempit, tambahkan Godong")
    apv.locator("#reject-form button[type=submit]").click()
    apv.wait_for_selector("#review[data-state='draft']")
    assert "Wilayah terlalu sempit" in apv.locator("p.error").inner_text()

"""Security basics: headers, CORS, cookies, CSRF, login throttling, no tracebacks, argon2."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from broadcast.api.app import create_app
from broadcast.audit.models import AuditEntry
from broadcast.users.models import User
from tests.factories import PASSWORD, login_form
from tests.reliability.helpers import world

pytestmark = pytest.mark.integration


@pytest.fixture
def w(db_url, redis_url, engine):
    with world(db_url, redis_url, engine) as w:
        yield w


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_security_headers_on_pages_api_and_errors(w, record):
    for path in ("/", "/api/v1/alerts", "/feed/atom.xml", "/no-such-page", "/masuk"):
        r = w.client.get(path)
        h = r.headers
        ok = (
            "default-src 'self'" in h["content-security-policy"]
            and "frame-ancestors 'none'" in h["content-security-policy"]
            and h["x-content-type-options"] == "nosniff"
            and h["referrer-policy"] == "strict-origin-when-cross-origin"
            and h["x-frame-options"] == "DENY"
            and "strict-transport-security" not in h  # only in production
        )
        record("security basics", "security headers on every response", "present" if ok else "MISSING", ok=ok)
        assert ok, (path, dict(h))


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_hsts_and_secure_cookies_in_production(db_url, redis_url, engine, record):
    with world(db_url, redis_url, engine, environment="production", public_base_url="http://internal.example") as w:
        hsts = w.client.get("/").headers.get("strict-transport-security", "")
        # Production is https: the (Secure) login CSRF cookie of the form comes back only over https.
        w.client.base_url = "https://testserver"  # type: ignore[assignment]
        r = w.client.post("/masuk", data=login_form(w.client, "op.palu", PASSWORD), follow_redirects=False)
        cookies = r.headers.get_list("set-cookie")
        session_cookie = next((c for c in cookies if c.startswith("broadcast_session=")), "")
        csrf_cookie = next((c for c in cookies if c.startswith("broadcast_csrf=")), "")
        checks = {
            "HSTS": hsts.startswith("max-age="),
            "signed in": r.status_code == 303,
            "session cookie": "Secure" in session_cookie
            and "HttpOnly" in session_cookie
            and "SameSite=lax" in session_cookie,
            "CSRF cookie": "Secure" in csrf_cookie and "SameSite=strict" in csrf_cookie and "HttpOnly" not in csrf_cookie,
        }
        missing = [k for k, v in checks.items() if not v]
        record("security basics", "cookie flags in production (Secure, HttpOnly, SameSite)",
               "set" if not missing else "MISSING " + ", ".join(missing), ok=not missing, tries=2)
        assert not missing, (missing, hsts, cookies)


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_cors_closed_by_default_and_allow_list(db_url, redis_url, engine, w, record):
    preflight = {
        "Origin": "https://evil.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    answers = [
        w.client.options("/api/v1/alerts", headers=preflight),
        w.client.get("/api/public/alerts", headers={"Origin": "https://evil.example"}),
    ]
    leaked = [r.request.url.path for r in answers if "access-control-allow-origin" in r.headers]
    record("security basics", "cross-origin request, CORS not configured",
           "no CORS headers" if not leaked else f"CORS headers on {leaked}", ok=not leaked, tries=len(answers))
    assert not leaked
    from tests.reliability.helpers import make_settings

    app = create_app(make_settings(db_url, redis_url, cors_origins=["https://peta.bpbd.example"]))
    with TestClient(app) as client:
        allowed = client.options("/api/v1/alerts", headers={**preflight, "Origin": "https://peta.bpbd.example"})
        refused = client.options("/api/v1/alerts", headers=preflight)
    ok = (
        allowed.headers.get("access-control-allow-origin") == "https://peta.bpbd.example"
        and "access-control-allow-origin" not in refused.headers
    )
    record("security basics", "cross-origin request, origin not on the allow-list", "refused" if ok else "ALLOWED",
           ok=ok, tries=1)
    assert allowed.headers["access-control-allow-origin"] == "https://peta.bpbd.example"
    assert refused.headers.get("access-control-allow-origin") != "https://evil.example"
    assert "access-control-allow-origin" not in refused.headers


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_cookie_writes_and_sign_out_need_the_csrf_token(w, record):
    r = w.client.post("/masuk", data=login_form(w.client, "op.palu", PASSWORD), follow_redirects=False)
    assert r.status_code == 303
    before = w.counts()
    writes = [
        w.client.post("/api/v1/alerts", json={}),  # the session cookie alone
        w.client.post("/api/v1/alerts", json={}, headers={"X-CSRF-Token": "forged"}),
    ]
    sign_out = w.client.post("/keluar", data={"csrf": "forged"}, follow_redirects=False)
    refused = [r.status_code == 403 and r.json().get("type") == "/problems/csrf" for r in writes]
    refused.append("broadcast_session=" not in sign_out.headers.get("set-cookie", ""))
    unchanged = w.counts() == before
    ok = all(refused) and unchanged
    record(
        "security basics",
        "cookie-authenticated write without/with a forged CSRF token",
        "403, nothing stored" if ok else f"refused {refused}, nothing stored {unchanged}",
        ok=ok,
        tries=len(refused),
    )
    assert all(refused), [(r.status_code, r.text) for r in writes]
    assert unchanged


@pytest.mark.parametrize("dbs", ["sqlite", "postgresql"], indirect=True)
def test_login_throttled_per_account_with_retry_after_and_audit(w, record):
    wrong = [
        w.client.post("/api/v1/auth/login", json={"username": "op.palu", "password": "wrong-password"})
        for _ in range(5)
    ]
    # Even the right password is refused now, from anywhere, until the window ends.
    api = w.client.post("/api/v1/auth/login", json={"username": "op.palu", "password": PASSWORD})
    form = w.client.post("/masuk", data=login_form(w.client, "op.palu", PASSWORD))
    # Another account is not affected.
    other = w.client.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
    with w.engine.connect() as c:
        actions = c.scalars(sa.select(AuditEntry.action).where(AuditEntry.action == "user.login_throttled")).all()
    checks = {
        "wrong passwords 401": all(r.status_code == 401 for r in wrong),
        "API 429 with Retry-After": api.status_code == 429
        and 0 < int(api.headers.get("retry-after", "0")) <= 15 * 60
        and api.json().get("type") == "/problems/login-throttled",
        "form 429 with Retry-After": form.status_code == 429 and int(form.headers.get("retry-after", "0")) > 0,
        "other account unaffected": other.status_code == 200,
        "audited once": len(actions) == 1,
    }
    broken = [k for k, v in checks.items() if not v]
    record(
        "security basics",
        "password guessing on one account (5 wrong, then right)",
        "429 Retry-After, audited" if not broken else "BROKEN: " + ", ".join(broken),
        ok=not broken,
        tries=len(wrong) + 2,
    )
    assert not broken, (broken, api.status_code, api.text, form.status_code)


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_login_throttled_per_address(db_url, redis_url, engine, record):
    with world(db_url, redis_url, engine, login_max_failures_per_ip=4) as w:
        sprayed = [
            w.client.post("/api/v1/auth/login", json={"username": f"nobody{i}", "password": "x"}) for i in range(4)
        ]
        r = w.client.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
    ok = all(s.status_code == 401 for s in sprayed) and r.status_code == 429 and bool(r.headers.get("retry-after"))
    record("security basics", "password spraying from one address over many accounts",
           "429 Retry-After" if ok else f"{[s.status_code for s in sprayed]} then {r.status_code}",
           ok=ok, tries=len(sprayed) + 1)
    assert all(s.status_code == 401 for s in sprayed)
    assert r.status_code == 429 and r.headers["retry-after"]


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_a_crashing_route_answers_a_generic_problem_without_traceback(db_url, redis_url, engine, record):
    from tests.reliability.helpers import make_settings

    app = create_app(make_settings(db_url, redis_url))

    @app.get("/boom-test-only")
    def boom() -> None:
        raise RuntimeError("secret internals: password=hunter2 at /srv/broadcast/x.py line 3")

    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/boom-test-only")
    checks = {
        "500": r.status_code == 500,
        "problem+json": r.headers.get("content-type", "").startswith("application/problem+json"),
        "generic type": r.headers.get("content-type", "").startswith("application/problem+json")
        and r.json().get("type") == "/problems/internal",
        "no internals": "Traceback" not in r.text and "hunter2" not in r.text and "x.py" not in r.text,
        "nosniff": r.headers.get("x-content-type-options") == "nosniff",
    }
    broken = [k for k, v in checks.items() if not v]
    record("security basics", "unhandled exception in a route",
           "generic 500 problem, no traceback" if not broken else "BROKEN: " + ", ".join(broken), ok=not broken)
    assert not broken, (broken, r.status_code, r.text)


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_passwords_are_argon2id(w, record):
    with w.engine.connect() as c:
        hashes = c.scalars(sa.select(User.password_hash)).all()
    weak = [h[:12] for h in hashes if not h.startswith("$argon2id$")]
    record("security basics", "stored password hashes", "argon2id" if not weak else f"not argon2id: {weak}",
           ok=bool(hashes) and not weak, tries=max(len(hashes), 1))
    assert hashes and not weak


ANONYMOUS_FORMS = ("/masuk", "/lapor", "/lapor-hoaks", "/cek")


def test_every_html_form_that_posts_carries_the_csrf_token(record):
    """Forms in templates/pages that POST send the CSRF field, except those that act for nobody: sign-in (no
    session yet) and the anonymous public forms (report, forward a hoax, check a message), which ignore the
    session cookie and are guarded by per-IP limits (and, for /lapor, a signed fill-time token) instead."""
    import re
    from pathlib import Path

    pages = Path(__file__).resolve().parents[2] / "templates" / "pages"
    missing = []
    forms = 0
    for page in sorted(pages.glob("*.html")):
        for form in re.findall(r"<form\b[^>]*>.*?</form>", page.read_text(), flags=re.S | re.I):
            if not re.search(r'method\s*=\s*"post"', form, flags=re.I) or any(
                f'action="{path}"' in form for path in ANONYMOUS_FORMS
            ):
                continue
            forms += 1
            if 'name="csrf"' not in form:
                missing.append(f"{page.name}: {form[:80]}")
    record("security basics", "HTML forms that POST carry the CSRF token", f"{forms} forms checked",
           ok=not missing, tries=max(forms, 1))
    assert not missing, "forms without a CSRF field:\n" + "\n".join(missing)


OPEN_REDIRECTS = (
    "//evil.example/konsol",
    "https://evil.example/",
    "http:/evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "javascript:alert(1)",
    "evil.example",
    "",
)


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_sign_in_returns_to_the_page_asked_for_and_nowhere_else(w, record):
    """A signed-out visit to a staff page goes to the sign-in form and, once signed in, back to that page; a `next`
    that leaves the site (scheme, //host, backslash, control characters) lands on the console instead."""
    r = w.client.get("/pusdalops?hours=6&hazard=banjir", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/masuk?next=%2Fpusdalops%3Fhours%3D6%26hazard%3Dbanjir"
    form = w.client.get(r.headers["location"])
    assert 'name="next" value="/pusdalops?hours=6&amp;hazard=banjir"' in form.text
    ok = w.client.post(
        "/masuk",
        data={**login_form(w.client, "analis"), "next": "/pusdalops?hours=6&hazard=banjir"},
        follow_redirects=False,
    )
    assert ok.status_code == 303 and ok.headers["location"] == "/pusdalops?hours=6&hazard=banjir"
    record("security basics", "sign-in returns to the page asked for", "same-site path kept", ok=True)
    for target in OPEN_REDIRECTS:
        page = w.client.get("/masuk", params={"next": target})
        assert page.status_code == 200 and 'name="next" value="/konsol"' in page.text, target
        r = w.client.post("/masuk", data={**login_form(w.client, "analis"), "next": target}, follow_redirects=False)
        landed = r.headers.get("location")
        record("security basics", "open redirect through sign-in `next`", f"to {landed}", ok=landed == "/konsol")
        assert r.status_code == 303 and landed == "/konsol", (target, landed)


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_only_the_review_preview_may_be_framed_and_only_by_our_pages(w, record):
    """The review page frames the alert's public page (same origin); every other page still refuses any frame."""
    op = w.headers("operator")
    from tests.factories import alert_payload

    alert = w.client.post("/api/v1/alerts", json=alert_payload("Exercise"), headers=op).json()
    w.client.post("/masuk", data=login_form(w.client, "op.palu"))
    framed = w.client.get(f"/konsol/peringatan/{alert['id']}/halaman")
    assert framed.status_code == 200 and "LATIHAN" in framed.text
    csp = framed.headers["content-security-policy"]
    assert "frame-ancestors 'self'" in csp and "'none'" not in csp.split("frame-ancestors")[1].split(";")[0]
    assert framed.headers["x-frame-options"] == "SAMEORIGIN"
    assert "default-src 'self'" in csp and "script-src 'self'" in csp  # the rest of the policy is unchanged
    review = w.client.get(f"/konsol/peringatan/{alert['id']}")
    assert f'src="/konsol/peringatan/{alert["id"]}/halaman"' in review.text
    for path in (f"/konsol/peringatan/{alert['id']}", "/konsol", f"/konsol/peringatan/{alert['id']}/halaman/x", "/"):
        h = w.client.get(path).headers
        ok = "frame-ancestors 'none'" in h["content-security-policy"] and h["x-frame-options"] == "DENY"
        record("security basics", "framing of pages other than the review preview", "refused" if ok else "ALLOWED", ok=ok)
        assert ok, path

"""Authorisation matrix: every route of the app x every role, generated from `app.routes`.

RULES is the one table of who may call what. A route the app serves that has no rule here fails the test
with its method and path named; so does a rule whose route is gone, and a route whose dependencies let
other roles through than its rule says (read by broadcast.api.access.required_roles).

What each rule expects, per caller:
- ``Roles(...)``: anonymous -> 401; a signed-in role outside the set -> 403 role-not-allowed; a role in the
  set gets past authorisation and exactly the status `authz_statuses.ALLOWED` states for it (not merely "not
  refused": a 404 or 422 must be stated to count). With ``jurisdiction=True``
  the operator of another kabupaten acting on a Kota Palu object gets 403 outside-jurisdiction.
- ``PUBLIC``: everyone gets past authorisation.
- ``TWILIO``: nobody gets in without X-Twilio-Signature, whatever token they hold (403 invalid-signature).
- ``SESSION_PAGE``: anonymous is sent to /masuk (303); signed-in staff see the page.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import pytest
from starlette.routing import BaseRoute

from broadcast.api.access import ANY_SIGNED_IN, iter_endpoints, required_roles
from broadcast.db import session_scope
from broadcast.partners import service as partners
from tests.factories import alert_payload
from tests.reliability.authz_statuses import allowed_status
from tests.reliability.helpers import World, world

pytestmark = pytest.mark.integration

ROLES = ("anonymous", "operator_other_kabupaten", "operator", "approver", "analyst", "admin")
STAFF = frozenset({"operator", "approver", "admin", "analyst"})
AUTHORS = frozenset({"operator", "approver", "admin"})
APPROVERS = frozenset({"approver", "admin"})
ADMINS = frozenset({"admin"})
AUTH_DENIALS = {"/problems/role-not-allowed", "/problems/outside-jurisdiction", "/problems/not-authenticated"}


@dataclass(frozen=True)
class Roles:
    roles: frozenset[str]
    jurisdiction: bool = False  # acting on a Kota Palu object: an operator of another kabupaten is refused


@dataclass(frozen=True)
class Kind:
    name: str


PUBLIC = Kind("public")
TWILIO = Kind("twilio-signature")
SESSION_PAGE = Kind("session-page")
# A console page about one Kota Palu object: anonymous to /masuk, another kabupaten's operator 403 outside-jurisdiction.
SESSION_PAGE_PALU = Kind("session-page-jurisdiction")
SIGNED_IN = Roles(ANY_SIGNED_IN)
# Partner intake: an X-API-Key or any staff token; nobody anonymous.
API_KEY_OR_STAFF = Kind("api-key-or-staff")
# An HTML form for signed-in staff (cookie + CSRF field, or a bearer token); anonymous is refused with 403.
STAFF_FORM = Kind("staff-form")

RULES: dict[tuple[str, str], Roles | Kind] = {
    # users and login
    ("POST", "/api/v1/auth/login"): PUBLIC,
    ("POST", "/api/v1/auth/logout"): SIGNED_IN,
    ("POST", "/api/v1/auth/password"): SIGNED_IN,
    ("GET", "/api/v1/auth/me"): SIGNED_IN,
    ("POST", "/api/v1/users"): Roles(ADMINS),
    ("GET", "/api/v1/users"): Roles(ADMINS),
    ("PATCH", "/api/v1/users/{user_id}"): Roles(ADMINS),
    # alerts
    ("POST", "/api/v1/alerts"): Roles(AUTHORS),
    ("GET", "/api/v1/alerts"): Roles(STAFF),
    ("GET", "/api/v1/alerts/{alert_id}"): Roles(STAFF, jurisdiction=True),  # a draft: inside the jurisdiction
    ("PUT", "/api/v1/alerts/{alert_id}"): Roles(AUTHORS, jurisdiction=True),
    ("POST", "/api/v1/alerts/{alert_id}/submit"): Roles(AUTHORS, jurisdiction=True),
    ("POST", "/api/v1/alerts/{alert_id}/approve"): Roles(APPROVERS),
    ("POST", "/api/v1/alerts/{alert_id}/reject"): Roles(APPROVERS),
    ("GET", "/api/v1/alerts/{alert_id}/deliveries"): Roles(STAFF, jurisdiction=True),
    ("GET", "/api/v1/alerts/{alert_id}/people"): Roles(STAFF, jurisdiction=True),
    ("GET", "/api/v1/alerts/{alert_id}/progress/stream"): Roles(STAFF),
    ("GET", "/api/v1/alerts/{alert_id}/outbox"): Roles(AUTHORS, jurisdiction=True),  # phone numbers (issue 18)
    ("GET", "/api/v1/alerts/{alert_id}/preview"): Roles(STAFF, jurisdiction=True),
    ("GET", "/api/v1/alerts/{alert_id}/reach"): Roles(STAFF, jurisdiction=True),
    ("GET", "/api/v1/alerts/{alert_id}/map.geojson"): Roles(STAFF, jurisdiction=True),
    ("GET", "/api/v1/alerts/{alert_id}/map.png"): Roles(STAFF, jurisdiction=True),
    ("GET", "/api/v1/alerts/{alert_id}/x-caps"): Roles(STAFF, jurisdiction=True),
    ("GET", "/api/v1/alerts/{alert_id}/audit"): Roles(STAFF, jurisdiction=True),
    ("POST", "/api/v1/alerts/{alert_id}/update"): Roles(AUTHORS, jurisdiction=True),
    ("POST", "/api/v1/alerts/{alert_id}/correct"): Roles(AUTHORS, jurisdiction=True),
    ("POST", "/api/v1/alerts/{alert_id}/cancel"): Roles(AUTHORS, jurisdiction=True),
    ("GET", "/api/v1/alerts/{alert_id}/cap"): Roles(STAFF, jurisdiction=True),
    ("POST", "/api/v1/cap/validate"): Roles(STAFF),
    ("POST", "/api/v1/cap/import"): Roles(AUTHORS),
    ("GET", "/api/v1/hazards"): Roles(STAFF),
    ("POST", "/api/v1/hazards/{key}/render"): Roles(STAFF),
    ("POST", "/api/v1/areas/resolve"): Roles(AUTHORS),
    # partners
    ("POST", "/api/v1/partners/webhooks"): Roles(ADMINS),
    ("GET", "/api/v1/partners/webhooks"): Roles(ADMINS),
    ("DELETE", "/api/v1/partners/webhooks/{webhook_id}"): Roles(ADMINS),
    ("GET", "/api/v1/partners/webhooks/{webhook_id}/deliveries"): Roles(ADMINS),
    # subscribers (phone numbers: only inside the caller's jurisdiction)
    ("POST", "/api/v1/subscribers"): Roles(AUTHORS),
    ("GET", "/api/v1/subscribers"): Roles(AUTHORS),  # analysts read aggregates (issue 18)
    ("GET", "/api/v1/subscribers/{subscriber_id}"): Roles(AUTHORS, jurisdiction=True),
    ("PATCH", "/api/v1/subscribers/{subscriber_id}"): Roles(AUTHORS, jurisdiction=True),
    ("POST", "/api/v1/subscribers/{subscriber_id}/stop"): Roles(AUTHORS, jurisdiction=True),
    # public pages and feeds
    ("GET", "/"): PUBLIC,
    ("GET", "/peringatan/{identifier}"): PUBLIC,
    ("GET", "/peringatan/{identifier}/area.geojson"): PUBLIC,
    ("GET", "/wilayah/{code}"): PUBLIC,
    ("GET", "/p/{alert_id}"): PUBLIC,
    ("GET", "/cap/{identifier}.xml"): PUBLIC,
    ("GET", "/feed/atom.xml"): PUBLIC,
    ("GET", "/feed/latihan.xml"): PUBLIC,
    ("GET", "/feed/rss.xml"): PUBLIC,
    ("GET", "/api/public/alerts"): PUBLIC,
    # staff pages
    ("GET", "/masuk"): PUBLIC,
    ("POST", "/masuk"): PUBLIC,
    ("POST", "/keluar"): PUBLIC,
    ("GET", "/konsol"): SESSION_PAGE,
    # operator console (issue 10): pages send anonymous callers to /masuk; the API behind them is role-checked
    ("GET", "/konsol/baru"): SESSION_PAGE,
    ("GET", "/konsol/persetujuan"): SESSION_PAGE,
    ("GET", "/konsol/peringatan/{alert_id}"): SESSION_PAGE_PALU,
    ("GET", "/konsol/peringatan/{alert_id}/halaman"): SESSION_PAGE_PALU,
    ("GET", "/konsol/peringatan/{alert_id}/progres"): SESSION_PAGE_PALU,
    ("GET", "/konsol/peringatan/{alert_id}/ubah"): SESSION_PAGE_PALU,
    ("POST", "/api/v1/alerts/preview"): Roles(AUTHORS),
    ("GET", "/api/v1/alerts/{alert_id}/previews"): Roles(STAFF, jurisdiction=True),
    ("GET", "/api/v1/areas/children"): Roles(STAFF),
    ("GET", "/api/v1/areas/search"): Roles(STAFF),
    ("POST", "/api/v1/areas/upload"): Roles(AUTHORS),
    # public reports and the operations centre (issue 11)
    ("GET", "/lapor"): PUBLIC,
    ("POST", "/lapor"): PUBLIC,
    ("POST", "/api/v1/reports"): API_KEY_OR_STAFF,
    ("GET", "/api/v1/reports"): Roles(STAFF),
    ("GET", "/api/v1/reports/{report_id}"): Roles(STAFF),
    ("GET", "/api/v1/reports/stream"): Roles(STAFF),
    ("GET", "/api/v1/reports/export.csv"): Roles(STAFF),
    ("GET", "/api/v1/reports/export.geojson"): Roles(STAFF),
    ("POST", "/api/v1/reports/{report_id}/state"): Roles(STAFF),
    ("POST", "/api/v1/reports/{report_id}/triage"): Roles(STAFF),
    ("GET", "/api/v1/incidents"): Roles(STAFF),
    ("GET", "/api/v1/incidents/{incident_id}"): Roles(STAFF),
    ("POST", "/api/v1/incidents/{incident_id}/state"): Roles(STAFF),
    ("POST", "/api/v1/incidents/{incident_id}/triage"): Roles(STAFF),
    ("POST", "/api/v1/incidents/{incident_id}/draft-alert"): Roles(STAFF),
    ("GET", "/pusdalops"): SESSION_PAGE,
    ("GET", "/pusdalops/foto/{name}"): Roles(STAFF),
    ("GET", "/peta/dasar/{level}/{x}/{y}.geojson"): PUBLIC,
    # trust and transparency (issue 13)
    ("GET", "/cek"): PUBLIC,
    ("POST", "/cek"): PUBLIC,
    ("POST", "/lapor-hoaks"): PUBLIC,
    ("GET", "/klarifikasi"): PUBLIC,
    ("GET", "/klarifikasi/{slug}"): PUBLIC,
    ("GET", "/transparansi"): PUBLIC,
    ("GET", "/transparansi/data.csv"): PUBLIC,
    ("GET", "/transparansi/data.json"): PUBLIC,
    ("GET", "/transparansi/latihan"): PUBLIC,
    ("GET", "/transparansi/latihan/data.csv"): PUBLIC,
    ("GET", "/transparansi/latihan/data.json"): PUBLIC,
    ("GET", "/.well-known/cap-signing.pem"): PUBLIC,
    ("GET", "/konsol/hoaks"): SESSION_PAGE,
    ("POST", "/konsol/hoaks/klarifikasi"): STAFF_FORM,
    ("POST", "/konsol/hoaks/klarifikasi/{clarification_id}/setujui"): STAFF_FORM,
    ("POST", "/konsol/hoaks/klarifikasi/{clarification_id}/tolak"): STAFF_FORM,
    # Twilio webhooks
    ("POST", "/webhooks/twilio/status"): TWILIO,
    ("POST", "/webhooks/twilio/inbound"): TWILIO,
    ("POST", "/webhooks/twilio/whatsapp"): TWILIO,
    ("POST", "/webhooks/telegram"): TWILIO,  # the same rule: nobody gets in without the webhook secret
    ("POST", "/webhooks/smsgateway"): TWILIO,  # nor without the SIM gateway's signature
    # operations and API docs
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/api/openapi.json"): PUBLIC,
    ("GET", "/api/docs"): PUBLIC,
    ("GET", "/api/redoc"): PUBLIC,
    ("GET", "/favicon.ico"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
}


# Valid bodies where a rule checks the jurisdiction of the object (validation would answer 422 first);
# everywhere else an empty body: authorisation runs before validation, so the body never decides a denial.
BODIES: dict[tuple[str, str], object] = {
    ("PUT", "/api/v1/alerts/{alert_id}"): alert_payload("Exercise"),
    ("POST", "/api/v1/alerts/{alert_id}/update"): {"reason": "uji matriks"},
    ("POST", "/api/v1/alerts/{alert_id}/correct"): {"reason": "uji matriks"},
    ("POST", "/api/v1/alerts/{alert_id}/cancel"): {"reason": "uji matriks"},
    ("PATCH", "/api/v1/subscribers/{subscriber_id}"): {"language": "en"},
}


# HTML forms (sent as form fields; authorisation is checked before the form is used).
FORMS: dict[tuple[str, str], dict[str, object]] = {
    ("POST", "/konsol/hoaks/klarifikasi"): {"hoax_ids": ["999999"], "title_id": "Uji", "body_id": "Uji", "csrf": ""},
    ("POST", "/konsol/hoaks/klarifikasi/{clarification_id}/setujui"): {"csrf": ""},
    ("POST", "/konsol/hoaks/klarifikasi/{clarification_id}/tolak"): {"csrf": ""},
    ("POST", "/lapor-hoaks"): {"teks": "uji matriks"},
    ("POST", "/cek"): {"kode": "ZZZZZZ"},
}


def app_routes(app) -> dict[tuple[str, str], BaseRoute]:  # type: ignore[no-untyped-def]
    """Every (method, path) the app answers, HEAD aside (Starlette adds it to every GET)."""
    return {(method, path): route for method, path, route in iter_endpoints(app)}


def test_every_route_has_exactly_one_rule():
    from broadcast.api.app import create_app

    served = app_routes(create_app())
    missing = sorted(set(served) - set(RULES))
    stale = sorted(set(RULES) - set(served))
    assert not missing, (
        "routes without an authorisation rule (add each to RULES in tests/reliability/test_authz_matrix.py): "
        + ", ".join(f"{m} {p}" for m, p in missing)
    )
    assert not stale, "rules for routes the app no longer serves: " + ", ".join(f"{m} {p}" for m, p in stale)


def test_route_dependencies_match_the_rules():
    """What a route's dependencies actually demand is what its rule says (a dropped AdminDep fails here)."""
    from broadcast.api.app import create_app

    wrong = []
    for key, route in app_routes(create_app()).items():
        rule = RULES.get(key)
        declared = required_roles(route)
        expected = rule.roles if isinstance(rule, Roles) else None
        if rule is not None and declared != expected:
            wrong.append(f"{key[0]} {key[1]}: dependencies allow {declared}, rule says {expected}")
    assert not wrong, "\n".join(wrong)


def _fixtures(w: World) -> dict[str, str]:
    """Path parameters: objects of Kota Palu (a draft Exercise alert, a subscriber) and a partner webhook."""
    r = w.client.post("/api/v1/alerts", json=alert_payload("Exercise"), headers=w.headers("operator"))
    assert r.status_code == 201, r.text
    alert = r.json()
    with session_scope(w.engine) as s:
        hook, _ = partners.register(
            s,
            name="Mitra",
            url="https://partner.example/hook",
            statuses=["Exercise"],
            area_code=None,
            actor_id=w.users["admin"],
        )
        hook_id = hook.id
    return {
        "alert_id": str(alert["id"]),
        "identifier": alert["identifier"],
        "subscriber_id": str(w.subscribers["palu"][0]),
        "webhook_id": str(hook_id),
        "user_id": str(w.users["analyst"]),
        "code": "72.71",
        "key": "banjir",
        "report_id": "999999",
        "incident_id": "999999",
        "slug": "tidak-ada",
        "clarification_id": "999999",
        "name": "tidak-ada.jpg",
        "level": "kecamatan",  # the base map cell over Kota Palu
        "x": "25",
        "y": "11",
    }


def _call(w: World, method: str, path: str, role: str, params: dict[str, str]):  # type: ignore[no-untyped-def]
    if path.endswith("/progress/stream"):
        # The stream of a real alert runs until its deliveries settle; an unknown alert is refused before it
        # starts, after authorisation, which is what this test is about.
        params = {**params, "alert_id": "999999"}
    url = path.format(**params)
    headers = w.headers(role)
    if path == "/api/v1/reports/stream":
        # Open for ten minutes once authorised: read the status line and hang up.
        with w.client.stream(method, url, headers=headers) as r:
            if r.status_code != 200:
                r.read()
            return r
    kwargs: dict[str, object] = {"headers": headers, "follow_redirects": False}
    if method in ("POST", "PUT", "PATCH"):
        if "/webhooks/twilio/" in url:
            kwargs["content"] = "MessageSid=SM1&MessageStatus=delivered"
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif "/cap/" in url:
            kwargs["content"] = b"<alert/>"
            headers["Content-Type"] = "application/xml"
        elif url in ("/masuk", "/keluar"):
            kwargs["data"] = {}
        elif (method, path) in FORMS:
            kwargs["data"] = FORMS[(method, path)]
        else:
            kwargs["json"] = BODIES.get((method, path), {})
    return w.client.request(method, url, **kwargs)  # type: ignore[arg-type]


def _problem_type(r) -> str:  # type: ignore[no-untyped-def]
    if r.headers.get("content-type", "").startswith("application/problem+json"):
        return str(r.json().get("type", ""))
    return ""


def _expect(rule: Roles | Kind, role: str) -> str:
    """What `role` should meet: 'pass', '401', '403-role', '403-jurisdiction', '403-signature', '303'."""
    if rule is PUBLIC:
        return "pass"
    if rule is TWILIO:
        return "403-signature"
    if rule is SESSION_PAGE:
        return "303" if role == "anonymous" else "pass"
    if rule is SESSION_PAGE_PALU:
        return {"anonymous": "303", "operator_other_kabupaten": "403-jurisdiction"}.get(role, "pass")
    if rule is API_KEY_OR_STAFF:
        return "401" if role == "anonymous" else "pass"
    if rule is STAFF_FORM:
        return "403-form" if role == "anonymous" else "pass"
    assert isinstance(rule, Roles)
    if role == "anonymous":
        return "401"
    base = "operator" if role == "operator_other_kabupaten" else role
    if rule.roles is not ANY_SIGNED_IN and base not in rule.roles:
        return "403-role"
    if role == "operator_other_kabupaten" and rule.jurisdiction:
        return "403-jurisdiction"
    return "pass"


def _meets(r, expected: str) -> bool:  # type: ignore[no-untyped-def]
    kind = _problem_type(r)
    if expected == "pass":
        return r.status_code not in (401, 500) and not (r.status_code == 403 and kind in AUTH_DENIALS)
    if expected == "401":
        return r.status_code == 401
    if expected == "403-role":
        return r.status_code == 403 and kind == "/problems/role-not-allowed"
    if expected == "403-jurisdiction":
        return r.status_code == 403 and kind == "/problems/outside-jurisdiction"
    if expected == "403-signature":
        return r.status_code == 403 and kind == "/problems/invalid-signature"
    if expected == "403-form":
        return r.status_code == 403 and kind == "/problems/csrf"
    if expected == "303":  # to the sign-in form, which brings the user back to the page asked for
        asked = quote(r.request.url.raw_path.decode(), safe="")
        return r.status_code == 303 and r.headers["location"] == f"/masuk?next={asked}"
    raise AssertionError(expected)


def test_matrix(db_url, redis_url, engine, record):
    with world(db_url, redis_url, engine) as w:
        params = _fixtures(w)
        failures = []
        for (method, path), _route in app_routes(w.client.app).items():
            rule = RULES.get((method, path))
            if rule is None:
                failures.append(f"{method} {path}: no rule")
                continue
            for role in ROLES:
                expected = _expect(rule, role)
                r = _call(w, method, path, role, params)
                ok = _meets(r, expected)
                if expected == "pass":  # allowed: exactly the stated answer, not merely "not refused"
                    status = allowed_status(method, path, role)
                    expected = f"pass with {status}" if status else "pass (no exact status in authz_statuses.py)"
                    ok = ok and r.status_code == status
                kind = expected.split(" with ")[0]
                record("authorisation", f"route x role ({kind})", "as expected" if ok else "WRONG", ok=ok)
                if not ok:
                    body = r.text[:200] if not path.endswith("/stream") else ""
                    failures.append(f"{method} {path} as {role}: expected {expected}, got {r.status_code} {body}")
        assert not failures, "\n".join(failures)

"""Bad-input corpus: hostile XML, GeoJSON bombs, oversized and malformed bodies, injection in text fields,
forged and replayed webhooks. Each must get a clear 4xx (problem JSON) and store nothing."""

from __future__ import annotations

import html
import json
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from twilio.request_validator import RequestValidator

from broadcast.alerts import service as alerts
from broadcast.alerts.schemas import AlertCreate
from broadcast.db import session_scope
from broadcast.dispatch.plan import plan_alert
from broadcast.partners import signing
from broadcast.reports.models import Report
from broadcast.users.models import User
from tests.factories import alert_payload
from tests.fakes.smsgateway import FakeSmsGateway
from tests.reliability.helpers import SMSGATEWAY_SIGNING_KEY, TWILIO_TEST_TOKEN, world

pytestmark = pytest.mark.integration

PALU_RING = [[119.85, -0.88], [119.90, -0.88], [119.90, -0.92], [119.85, -0.92], [119.85, -0.88]]


@pytest.fixture
def w(db_url, redis_url, engine):
    with world(db_url, redis_url, engine) as w:
        yield w


def _refused(w, record, area: str, attack: str, method: str, path: str, *, statuses=range(400, 500), **kwargs):
    """Send one hostile request; it must be refused with a 4xx problem and change no row anywhere."""
    before = w.counts()
    r = w.client.request(method, path, **kwargs)
    after = w.counts()
    changed = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    problem = r.headers.get("content-type", "").startswith("application/problem+json")
    ok = r.status_code in statuses and problem and not changed
    record(area, attack, f"{r.status_code}, rows changed: {len(changed)}", ok=ok)
    assert ok, f"{attack}: {r.status_code} {r.text[:300]} changed={changed}"
    return r


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE alert [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&xxe;</identifier></alert>"""
XXE_PARAM = b"""<?xml version="1.0"?>
<!DOCTYPE alert [<!ENTITY % ext SYSTEM "http://127.0.0.1:9/evil.dtd"> %ext;]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"/>"""
BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol">
<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
<!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
<!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
<!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
<!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
<!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&lol9;</identifier></alert>"""
QUADRATIC_BLOWUP = (b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY a "' + b"x" * 20_000 + b'">]><alert>'
                    + b"&a;" * 5_000 + b"</alert>")
DEEP_XML = b"<alert>" + b"<a>" * 15_000 + b"</a>" * 15_000 + b"</alert>"  # under the body limit
HOSTILE_XML = {
    "XXE external entity (file:///etc/passwd)": XXE,
    "XXE parameter entity (external DTD)": XXE_PARAM,
    "billion laughs (nested entities)": BILLION_LAUGHS,
    "quadratic blowup (one large entity repeated)": QUADRATIC_BLOWUP,
    "deeply nested elements (15,000 levels)": DEEP_XML,
    "not XML at all": b"\x00\x01PK\x03\x04 this is a zip",
    "invalid UTF-8 in an XML body": b'<?xml version="1.0" encoding="utf-8"?><alert>\xff\xfe\xc3\x28</alert>',
    "truncated CAP": b'<?xml version="1.0"?><alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>x',
}


@pytest.mark.parametrize("dbs", ["sqlite", "postgresql"], indirect=True)
def test_hostile_cap_xml_is_refused_and_nothing_stored(w, record):
    op = w.headers("operator")
    for attack, body in HOSTILE_XML.items():
        for path in ("/api/v1/cap/import", "/api/v1/cap/validate"):
            if path.endswith("validate"):
                # Validation answers 200 with the reasons for most bad documents; it must not expand or fetch.
                before = w.counts()
                r = w.client.post(path, content=body, headers={**op, "Content-Type": "application/xml"})
                ok = (r.status_code in (200, 400, 413, 415, 422) and w.counts() == before
                      and "root:" not in r.text and "lollol" not in r.text)
                if r.status_code == 200:
                    ok = ok and r.json().get("valid") is False
                record("hostile CAP/XML", attack + " (validate)", f"{r.status_code}, not valid", ok=ok)
                assert ok, (attack, r.status_code, r.text[:300])
            else:
                r = _refused(w, record, "hostile CAP/XML", attack + " (import)", "POST", path, content=body,
                             headers={**op, "Content-Type": "application/xml"})
                assert "root:" not in r.text and "lollol" not in r.text


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_huge_and_mistyped_cap_bodies(w, record):
    op = w.headers("operator")
    huge = b'<?xml version="1.0"?><alert>' + b"<note>" + b"x" * 300_000 + b"</note></alert>"
    _refused(w, record, "hostile CAP/XML", "CAP file over the body limit", "POST", "/api/v1/cap/import",
             content=huge, headers={**op, "Content-Type": "application/xml"}, statuses={413})

    def chunks():
        for _ in range(40):
            yield b"<alert>" + b"y" * 10_000

    _refused(w, record, "oversized bodies", "chunked body over the limit, no Content-Length", "POST",
             "/api/v1/cap/import", content=chunks(), headers={**op, "Content-Type": "application/xml"},
             statuses={413})
    _refused(w, record, "hostile CAP/XML", "CAP sent as JSON content type", "POST", "/api/v1/cap/import",
             content=XXE, headers={**op, "Content-Type": "application/json"})


def _dumps(value: object) -> str:
    """json.dumps that passes pre-encoded JSON strings (under "geometry") through verbatim."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{v if k == 'geometry' and isinstance(v, str) else _dumps(v)}"
                              for k, v in value.items()) + "}"
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        return "[" + ",".join(_dumps(v) for v in value) + "]"
    return json.dumps(value)


def _vertices(n: int) -> list[list[float]]:
    import math

    ring = [[119.87 + 0.02 * math.cos(2 * math.pi * i / n), -0.9 + 0.02 * math.sin(2 * math.pi * i / n)]
            for i in range(n)]
    return [*ring, ring[0]]


@pytest.mark.parametrize("dbs", ["sqlite", "postgresql"], indirect=True)
def test_geojson_bombs_on_area_endpoints(w, record):
    op = w.headers("operator")
    big = {"type": "Polygon", "coordinates": [_vertices(1_000_000)]}
    many_parts = {"type": "MultiPolygon", "coordinates": [[PALU_RING]] * 20_000}
    deep = '{"type": "Polygon", "coordinates": ' + "[" * 5_000 + "119.87, -0.9" + "]" * 5_000 + "}"
    deep_json = '{"geometry":' + '{"a":' * 30_000 + "1" + "}" * 30_000 + "}"  # under the body limit
    bombs = {
        "GeoJSON polygon with a million vertices": {"geometry": big},
        "GeoJSON MultiPolygon with 20,000 parts": {"geometry": many_parts},
        "GeoJSON coordinates nested 5,000 deep": {"geometry": deep},
    }
    for attack, spec in bombs.items():
        body = _dumps(spec)
        _refused(w, record, "GeoJSON bombs", attack + " (resolve)", "POST", "/api/v1/areas/resolve", content=body,
                 headers={**op, "Content-Type": "application/json"})
        payload = alert_payload("Exercise")
        payload["areas"] = [{"area_desc": "bom", **spec}]
        _refused(w, record, "GeoJSON bombs", attack + " (create alert)", "POST", "/api/v1/alerts",
                 content=_dumps(payload), headers={**op, "Content-Type": "application/json"})
    _refused(w, record, "GeoJSON bombs", "JSON objects nested 30,000 deep", "POST", "/api/v1/areas/resolve",
             content=deep_json, headers={**op, "Content-Type": "application/json"})


@pytest.mark.parametrize("dbs", ["sqlite", "postgresql"], indirect=True)
def test_geojson_under_the_body_limit_but_too_complex(db_url, redis_url, engine, record):
    # With a generous body limit the geometry itself must be refused for its size, not time out or crash.
    with world(db_url, redis_url, engine, max_body_bytes=50_000_000) as w:
        op = w.headers("operator")
        spec = {"geometry": {"type": "Polygon", "coordinates": [_vertices(1_000_000)]}}
        r = _refused(w, record, "GeoJSON bombs", "a million vertices under a 50 MB body limit", "POST",
                     "/api/v1/areas/resolve", content=json.dumps(spec),
                     headers={**op, "Content-Type": "application/json"})
        assert r.status_code in (413, 422)


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_malformed_bodies(w, record):
    op = w.headers("operator")
    json_headers = {**op, "Content-Type": "application/json"}
    cases = {
        "invalid UTF-8 in a JSON body": b'{"reason": "\xff\xfe\xc3\x28"}',
        "truncated JSON": b'{"status": "Exercise", "infos": [',
        "JSON of the wrong type (a list)": b"[1, 2, 3]",
        "NaN and Infinity in numbers": b'{"geometry": {"type": "Point", "coordinates": [NaN, Infinity]}}',
        "NUL bytes in text": json.dumps(alert_payload("Exercise", headline="a\x00b")).encode(),
    }
    for attack, body in cases.items():
        _refused(w, record, "malformed bodies", attack, "POST", "/api/v1/areas/resolve", content=body,
                 headers=json_headers)
    payload = alert_payload("Exercise")
    payload["infos"][0]["headline"] = "x" * 200_000
    _refused(w, record, "oversized bodies", "JSON body over the limit (Content-Length)", "POST", "/api/v1/alerts",
             content=json.dumps(payload), headers=json_headers, statuses={413})
    _refused(w, record, "oversized bodies", "lying Content-Length", "POST", "/api/v1/alerts",
             content=b"{}", headers={**json_headers, "Content-Length": "99999999999"}, statuses={413})
    payload = alert_payload("Exercise")
    payload["infos"][0]["headline"] = "h" * 5_000
    _refused(w, record, "oversized text fields", "headline of 5,000 characters", "POST", "/api/v1/alerts",
             json=payload, headers=op)
    _refused(w, record, "malformed bodies", "invalid UTF-8 in a sign-in form", "POST", "/api/v1/auth/login",
             content=b'{"username": "\xff", "password": "x"}', headers={"Content-Type": "application/json"})


TEMPLATE_PROBE = ("{{ 7*7 }}", "{% raw %}")
INJECTIONS = [
    "<script>alert('xss')</script>",
    '"><img src=x onerror=alert(1)>',
    "Robert'); DROP TABLE alerts;--",
    "' OR '1'='1",
    " ".join(TEMPLATE_PROBE),
    "javascript:alert(1)",
]


def template_evaluated(page: str) -> bool:
    """True unless the template syntax in the hostile text reached the page verbatim: a renderer that evaluates
    it turns `{{ 7*7 }}` into 49 and swallows `{% raw %}` (or fails to render at all)."""
    text = html.unescape(page)
    return not all(probe in text for probe in TEMPLATE_PROBE)


def test_the_template_check_fails_on_a_renderer_that_evaluates_the_text():
    """The check above, proven against a deliberately vulnerable renderer: one that runs the stored text through
    Jinja (server-side template injection) instead of passing it as data."""
    import jinja2

    hostile = " | ".join(INJECTIONS)
    safe = jinja2.Environment(autoescape=True).from_string("<p>{{ text }}</p>").render(text=hostile)
    vulnerable_text = hostile.replace("{% raw %}", "{% raw %}{% endraw %}")  # Jinja needs the block closed
    vulnerable = jinja2.Environment(autoescape=True).from_string(f"<p>{vulnerable_text}</p>").render()
    assert "49" in vulnerable
    assert not template_evaluated(safe)
    assert template_evaluated(vulnerable)


@pytest.mark.parametrize("dbs", ["sqlite", "postgresql"], indirect=True)
def test_injection_in_text_fields_is_stored_verbatim_and_escaped_on_pages(w, record):
    hostile = " | ".join(INJECTIONS)
    with session_scope(w.engine) as s:
        team = {u.username: u for u in s.scalars(sa.select(User))}
        payload = alert_payload("Exercise")
        for info in payload["infos"]:
            info["headline"] = ("Banjir " + hostile)[:160]
            info["description"] = hostile
            info["instruction"] = hostile
            info["event"] = "Banjir <b>"
        payload["areas"][0]["area_desc"] = "Kota Palu <script>x()</script>"
        alert = alerts.create_alert(s, data=AlertCreate(**payload), author=team["op.palu"], sender="bpbd@palu")
        alerts.submit_alert(s, alert_id=alert.id, actor=team["op.palu"])
        alerts.approve_alert(s, alert_id=alert.id, approver=team["apv.sulteng"], production=False)
        plan_alert(s, alert_id=alert.id)
        identifier, alert_id = alert.identifier, alert.id
    with w.engine.connect() as c:
        assert c.scalar(sa.text("SELECT count(*) FROM alerts")) >= 1  # DROP TABLE did nothing
    pages = {"/": "home page", f"/peringatan/{identifier}": "alert page", "/wilayah/72.71": "area page",
             f"/peringatan/{identifier}?lang=en": "alert page (English)"}
    for path, page in pages.items():
        r = w.client.get(path)
        assert r.status_code == 200, (path, r.status_code)
        ok = ("<script>alert(" not in r.text and "<img src=x" not in r.text and "<script>x()" not in r.text
              and "&lt;script&gt;" in r.text and not template_evaluated(r.text))
        record("injection in text fields", f"HTML/SQL/template injection rendered on the {page}",
               "escaped" if ok else "NOT ESCAPED", ok=ok)
        assert ok, path
    r = w.client.get("/konsol", headers=w.headers("operator"))
    ok = r.status_code == 200 and "<script>alert(" not in r.text
    record("injection in text fields", "HTML injection rendered in the staff console", "escaped", ok=ok)
    assert ok
    for path in ("/feed/latihan.xml", f"/cap/{identifier}.xml"):
        r = w.client.get(path)
        ok = r.status_code == 200 and "<script>" not in r.text and "&lt;script&gt;" in r.text
        record("injection in text fields", f"markup injection in {path.split('/')[1]} XML", "escaped", ok=ok)
        assert ok, path
    r = w.client.get(f"/api/v1/alerts/{alert_id}", headers=w.headers("operator"))
    assert INJECTIONS[0] in r.json()["infos"][0]["description"]  # stored verbatim, escaped only on output


def _twilio(w, path: str, form: dict[str, str], *, signature: str | None):
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    return w.client.post(path, content=urlencode(form), headers=headers)


def _sign(w, path: str, form: dict[str, str], token: str = TWILIO_TEST_TOKEN) -> str:
    return RequestValidator(token).compute_signature(w.settings.twilio_webhook_base_url + path, form)


def _forged_are_refused(w, record, what: str, path: str, form: dict[str, str], attacks: dict[str, str | None]):
    """Each forged signature: 403 and no row changed anywhere."""
    for attack, sig in attacks.items():
        before = w.counts()
        r = _twilio(w, path, form, signature=sig)
        ok = r.status_code == 403 and w.counts() == before
        record("forged webhooks", f"Twilio inbound {what}, {attack}", f"{r.status_code}, nothing stored", ok=ok)
        assert ok, (attack, r.status_code, r.text)


def _replays_are_stored_once(w, record, what: str, path: str, form: dict[str, str]):
    """A correctly signed message delivered five times is stored once and answered the same each time."""
    replies = set()
    for _ in range(5):
        r = _twilio(w, path, form, signature=_sign(w, path, form))
        assert r.status_code == 200, r.text
        replies.add(r.text)
    n = w.count(Report)
    ok = n == 1 and len(replies) == 1
    record("replayed webhooks", f"Twilio inbound {what} delivered 5 times (same MessageSid)", f"{n} report stored",
           ok=ok, tries=5)
    assert ok


@pytest.mark.parametrize("dbs", ["sqlite", "postgresql"], indirect=True)
def test_forged_and_replayed_sim_gateway_webhooks(w, record):
    import time

    path = "/webhooks/smsgateway"
    phone = FakeSmsGateway(signing_key=SMSGATEWAY_SIGNING_KEY)
    good = phone.received("+6281299000001", "LAPOR banjir setinggi lutut di Jl. Sudirman")
    stamp = good.headers["X-Timestamp"]
    forged = {
        "no signature": (good.body, {**good.headers, "X-Signature": ""}),
        "no timestamp": (good.body, {**good.headers, "X-Timestamp": ""}),
        "signed with another key": (good.body, FakeSmsGateway(signing_key="not-the-key").received("+1", "x").headers
                                    | {"X-Timestamp": stamp}),
        "signature of a different body": (good.body.replace(b"banjir", b"gempa "), good.headers),
        "timestamp moved by one second": (good.body, {**good.headers, "X-Timestamp": str(int(stamp) + 1)}),
        "correctly signed 6 minutes ago (stale)": _hook(phone.received("+6281299000001", "LAPOR x", at=time.time() - 360)),
        "correctly signed 6 minutes ahead (future)": _hook(phone.received("+6281299000001", "LAPOR y", at=time.time() + 360)),
    }
    for attack, (body, headers) in forged.items():
        before = w.counts()
        r = w.client.post(path, content=body, headers=headers)
        ok = r.status_code == 403 and w.counts() == before
        record("forged webhooks", f"SIM gateway inbound SMS, {attack}", f"{r.status_code}, nothing stored", ok=ok)
        assert ok, (attack, r.status_code, r.text)
    first = w.client.post(path, content=good.body, headers=good.headers)
    assert first.status_code == 200, first.text
    # Replay: the same signed request again, within the window, five times: refused each time, nothing stored.
    before = w.counts()
    statuses = [w.client.post(path, content=good.body, headers=good.headers).status_code for _ in range(5)]
    ok = statuses == [403] * 5 and w.counts() == before and w.count(Report) == 1
    record("replayed webhooks", "SIM gateway inbound SMS, the same signed event replayed 5 times",
           f"{statuses[0]}, {w.count(Report)} report stored", ok=ok, tries=5)
    assert ok, statuses
    # A delivery state for someone else's message, signed with another key, moves nothing.
    status = FakeSmsGateway(signing_key="not-the-key").webhook("sms:delivered", {"messageId": "1-abc"})
    before = w.counts()
    r = w.client.post(path, content=status.body, headers=status.headers)
    ok = r.status_code == 403 and w.counts() == before
    record("forged webhooks", "SIM gateway delivery state signed with another key", f"{r.status_code}", ok=ok)
    assert ok


def _hook(hook):
    return hook.body, hook.headers


def _common_forgeries(w, path: str, form: dict[str, str]) -> dict[str, str | None]:
    return {
        "no signature": None,
        "empty signature": "",
        "signature made with the wrong token": _sign(w, path, form, token="not-the-token"),
        "signature of another URL (Host header spoofing)": RequestValidator(TWILIO_TEST_TOKEN).compute_signature(
            "https://evil.example" + path, form),
    }


@pytest.mark.parametrize("dbs", ["sqlite", "postgresql"], indirect=True)
def test_forged_and_replayed_twilio_webhooks(w, record):
    path = "/webhooks/twilio/inbound"
    form = {"MessageSid": "SM" + "a" * 32, "From": "+6281299000001", "To": "+6281100000000",
            "Body": "LAPOR banjir setinggi lutut di Jl. Sudirman", "AccountSid": "AC" + "b" * 32}
    forged = {
        **_common_forgeries(w, path, form),
        "signature of a different body": _sign(w, path, {**form, "Body": "LAPOR palsu"}),
        "signature with a tampered parameter": _sign(w, path, {**form, "From": "+6281299000002"}),
    }
    _forged_are_refused(w, record, "SMS", path, form, forged)
    status_form = {"MessageSid": "SM" + "c" * 32, "MessageStatus": "delivered"}
    before = w.counts()
    r = _twilio(w, "/webhooks/twilio/status", status_form, signature=_sign(w, path, status_form))
    ok = r.status_code == 403 and w.counts() == before
    record("forged webhooks", "Twilio status callback signed for another path", f"{r.status_code}", ok=ok)
    assert ok
    _replays_are_stored_once(w, record, "SMS", path, form)


@pytest.mark.parametrize("dbs", ["sqlite", "postgresql"], indirect=True)
def test_forged_and_replayed_whatsapp_webhooks(w, record):
    path = "/webhooks/twilio/whatsapp"
    form = {"MessageSid": "SM" + "d" * 32, "From": "whatsapp:+6281299000001", "To": "whatsapp:+6281100000000",
            "Body": "LAPOR banjir setinggi lutut", "WaId": "6281299000001", "ProfileName": "Warga",
            "Latitude": "-0.8917", "Longitude": "119.8707", "NumMedia": "1", "MediaUrl0": "https://x.example/ME1",
            "AccountSid": "AC" + "b" * 32}
    forged = {
        **_common_forgeries(w, path, form),
        "signature with a moved location": _sign(w, path, {**form, "Latitude": "-6.2"}),
        "signature with another photo": _sign(w, path, {**form, "MediaUrl0": "https://evil.example/ME2"}),
        "signed inbound SMS replayed to the WhatsApp webhook": _sign(w, "/webhooks/twilio/inbound", form),
    }
    _forged_are_refused(w, record, "WhatsApp", path, form, forged)
    _replays_are_stored_once(w, record, "WhatsApp", path, form)


def test_partner_signature_verification_refuses_forgeries_and_replays(record):
    secret, body = "partner-secret-1", b'{"alert": "x"}'
    now = 1_800_000_000
    good = signing.sign(secret, body, timestamp=now)
    attempts = {
        "valid signature": (good, body, True),
        "signature with another secret": (signing.sign("other", body, timestamp=now), body, False),
        "body changed after signing": (good, body + b" ", False),
        "replay of a signature 10 minutes old": (signing.sign(secret, body, timestamp=now - 600), body, False),
        "timestamp from the future": (signing.sign(secret, body, timestamp=now + 600), body, False),
        "malformed header": ("t=abc,v1=", body, False),
        "missing header": (None, body, False),
    }
    for attack, (header, sent, expected) in attempts.items():
        ok = signing.verify(secret, header, sent, now=now) is expected
        record("forged webhooks", f"partner webhook verify(): {attack}", "accepted" if expected else "refused", ok=ok)
        assert ok, attack

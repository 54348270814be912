"""Issue 24: forged documents and anonymous input must never outrank the warning.

Each test here is one finding of the second outside review, tried for real (a real key pair and signxml, the real
`broadcast` command in a subprocess, real HTTP through the app) and recorded for RELIABILITY.md.
"""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from lxml import etree
from signxml import XMLSigner, methods

from broadcast.cap import signing
from broadcast.db import make_engine
from tests.e2e.conftest import broadcast_exe, clean_env

pytestmark = pytest.mark.integration

TRUSTED = "bpbd@trusted.example"


def forged_cap(sender: str = TRUSTED, *, identifier: str = "FORGED-1") -> bytes:
    # Sent a minute ago (WITA), so a certificate judged at <sent> would be valid too: the refusal must come from
    # the signature's binding, not from the clock.
    sent = (datetime.now(UTC) - timedelta(minutes=1)).astimezone(timezone(timedelta(hours=8)))
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>{identifier}</identifier>
  <sender>{sender}</sender>
  <sent>{sent.isoformat(timespec='seconds')}</sent>
  <status>Actual</status>
  <msgType>Alert</msgType>
  <scope>Public</scope>
  <info>
    <language>id-ID</language>
    <category>Geo</category>
    <event>PERINGATAN TSUNAMI</event>
    <urgency>Immediate</urgency>
    <severity>Extreme</severity>
    <certainty>Observed</certainty>
    <headline>PERINGATAN TSUNAMI: segera mengungsi ke tempat tinggi</headline>
    <area><areaDesc>Kota Palu</areaDesc><geocode><valueName>kode</valueName><value>72.71</value></geocode></area>
  </info>
</alert>
""".encode()


@pytest.fixture(scope="module")
def keypair(tmp_path_factory):
    return signing.create_dev_keypair(tmp_path_factory.mktemp("trusted-keys"), common_name=TRUSTED)


def wrapped(keypair: signing.KeyPair) -> bytes:
    """The review's wrapping attack: a valid enveloping signature by the trusted key over unrelated XML
    (`<ping>heartbeat</ping>`, Reference URI="#object"), pasted as the last child of a forged CAP."""
    # In the CAP namespace, so its canonical form is the same once pasted into the forged <alert>.
    ping = etree.fromstring(b'<ping xmlns="urn:oasis:names:tc:emergency:cap:1.2">heartbeat</ping>')
    signature = XMLSigner(
        method=methods.enveloping, signature_algorithm="rsa-sha256", digest_algorithm="sha256", c14n_algorithm=signing.EXC_C14N
    ).sign(
        ping, key=keypair.key_pem, cert=keypair.cert_pem
    )
    root = etree.fromstring(forged_cap())
    root.append(signature)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def run(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [broadcast_exe(), *args], env=clean_env(**env), capture_output=True, text=True, timeout=120, cwd=cwd
    )


def _drafts(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as c:
            return int(c.scalar(sa.text("SELECT count(*) FROM alerts")) or 0)
    finally:
        engine.dispose()


def test_signature_wrapping_is_refused_by_cap_verify_and_cap_import(sqlite_dbs, keypair, tmp_path, record):
    doc = tmp_path / "wrapped.xml"
    doc.write_bytes(wrapped(keypair))
    # The signature itself is genuine: signxml verifies it against the trusted certificate (over <ping>).
    assert b"heartbeat" in doc.read_bytes() and b'URI="#object"' in doc.read_bytes()
    cert = tmp_path / "trusted.pem"
    cert.write_bytes(keypair.cert_pem)

    verify = run("cap", "verify", str(doc), "--cert", str(cert), cwd=tmp_path)
    refused = verify.returncode == 1 and "VALID (trusted)" not in verify.stdout and "INVALID" in verify.stdout
    record("CAP signatures", "signature wrapping: enveloping signature over <ping> in a forged CAP (cap verify)",
           "refused" if refused else "ACCEPTED", ok=refused)
    assert refused, verify.stdout + verify.stderr

    url = sqlite_dbs.fresh()
    imp = run("cap", "import", str(doc), "--no-fetch", cwd=tmp_path, BROADCAST_DATABASE_URL=url,
              BROADCAST_CAP_SIGNING__TRUSTED_SENDERS=f'{{"{TRUSTED}": "{cert}"}}')
    refused = imp.returncode == 1 and _drafts(url) == 0 and "signature" in imp.stdout
    record("CAP signatures", "signature wrapping: enveloping signature over <ping> in a forged CAP (cap import)",
           "refused, no draft" if refused else "DRAFT CREATED", ok=refused)
    assert refused, imp.stdout + imp.stderr

    # The same sender's genuine enveloped signature still imports (the check refuses forgeries, not the sender).
    good = tmp_path / "good.xml"
    good.write_bytes(signing.sign_cap(forged_cap(identifier="GENUINE-1"), keypair))
    ok = run("cap", "import", str(good), "--no-fetch", cwd=tmp_path, BROADCAST_DATABASE_URL=url,
             BROADCAST_CAP_SIGNING__TRUSTED_SENDERS=f'{{"{TRUSTED}": "{cert}"}}')
    assert ok.returncode == 0 and _drafts(url) == 1, ok.stdout + ok.stderr


class _AnySigner(XMLSigner):
    """signxml refuses to make SHA-1 signatures; a forger's tool does not."""

    def check_deprecated_methods(self) -> None:
        return None


def _sign(data: bytes, keypair: signing.KeyPair, **options: str) -> bytes:
    root = etree.fromstring(data)
    signer = _AnySigner(method=methods.enveloped, c14n_algorithm=signing.EXC_C14N, **options)
    return etree.tostring(signer.sign(root, key=keypair.key_pem, cert=keypair.cert_pem))


def _expired_keypair(tmp_path: Path) -> signing.KeyPair:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, TRUSTED)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=30)).not_valid_after(now - timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return signing.KeyPair(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        cert.public_bytes(serialization.Encoding.PEM),
    )


def test_pinned_sender_signatures_follow_every_binding_rule(keypair, tmp_path, record):
    genuine = signing.sign_cap(forged_cap(), keypair)
    verified = signing.check_trusted(genuine, cert_pem=keypair.cert_pem)
    assert b"PERINGATAN TSUNAMI" in verified.signed_data and b"Signature" not in verified.signed_data

    cases = {
        "RSA-SHA1 signature from a pinned sender": _sign(
            forged_cap(), keypair, signature_algorithm="rsa-sha1", digest_algorithm="sha1"
        ),
        "SHA-256 signature with a SHA-1 digest": _sign(
            forged_cap(), keypair, signature_algorithm="rsa-sha256", digest_algorithm="sha1"
        ),
        "second signature appended (genuine one kept)": _append_copy(genuine),
        "signature nested inside <info>, not enveloped in <alert>": _nest(genuine),
    }
    # The forger writes <sent> inside the certificate's validity; judged now (the receive time), it has expired.
    expired = _expired_keypair(tmp_path)
    old_sent = (datetime.now(UTC) - timedelta(days=10)).isoformat(timespec="seconds")
    backdated = re.sub(rb"<sent>[^<]+</sent>", f"<sent>{old_sent}</sent>".encode(), forged_cap())
    cases["certificate expired now, valid at the document's own <sent>"] = signing.sign_cap(backdated, expired)
    for attack, doc in cases.items():
        cert = expired.cert_pem if "expired" in attack else keypair.cert_pem
        try:
            signing.check_trusted(doc, cert_pem=cert)
            refused = False
        except signing.SignatureError:
            refused = True
        trusted = [c for c in signing.verify_cap(doc, cert_pem=cert) if c.trusted]
        ok = refused and not trusted
        record("CAP signatures", attack, "refused" if ok else "ACCEPTED", ok=ok)
        assert ok, attack


def _append_copy(signed: bytes) -> bytes:
    root = etree.fromstring(signed)
    sig = root.find(f"{{{signing.DS}}}Signature")
    root.append(etree.fromstring(etree.tostring(sig)))
    return etree.tostring(root)


def _nest(signed: bytes) -> bytes:
    root = etree.fromstring(signed)
    sig = root.find(f"{{{signing.DS}}}Signature")
    root.remove(sig)
    root.find("{urn:oasis:names:tc:emergency:cap:1.2}info").append(sig)
    return etree.tostring(root)


LOOK_ALIKES = {
    "upper case": "BPBD@TRUSTED.EXAMPLE",
    "zero-width space": "bpbd@trusted\u200b.example",
    "zero-width joiner": "bpbd\u200d@trusted.example",
    "right-to-left mark": "bpbd@trusted.example\u200f",
    "soft hyphen": "bpbd@trus\u00adted.example",
    "Cyrillic a": "bpbd@trusted.ex\u0430mple",
    "fullwidth letters": "\uff42\uff50\uff42\uff44@trusted.example",
    "mathematical bold b": "\U0001d41bpbd@trusted.example",
}


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_look_alike_trusted_senders_do_not_import_unsigned(session, keypair, record):
    from broadcast.intake import cap_documents
    from tests.factories import make_team

    team = make_team(session)
    pinned = {TRUSTED: keypair.cert_pem}
    exact = cap_documents.import_document(
        session, forged_cap(), author=team["admin"], origin="cap-import", fetch=None, trusted_certs=pinned
    )
    assert not exact.imported and "tanda tangan" in exact.skipped[0].reason
    for n, (what, sender) in enumerate(LOOK_ALIKES.items()):
        result = cap_documents.import_document(
            session,
            forged_cap(sender, identifier=f"LOOKALIKE-{n}"),
            author=team["admin"],
            origin="cap-import",
            fetch=None,
            trusted_certs=pinned,
        )
        ok = not result.imported
        record("CAP signatures", f"unsigned CAP from a look-alike trusted sender ({what})",
               "refused" if ok else "IMPORTED", ok=ok)
        assert ok, (what, result.skipped)
    # An unrelated plain-ASCII sender still imports unsigned (nothing pinned for it).
    other = cap_documents.import_document(
        session, forged_cap("cap@other.example", identifier="OTHER-1"), author=team["admin"], origin="cap-import",
        fetch=None, trusted_certs=pinned,
    )
    assert len(other.imported) == 1, other.skipped


# ---------------------------------------------------------------- phone numbers, subscriber audit, SMS replies

JUNK_PHONES = {
    "markup around a number": "[link=https://evil.example/]0812 klik[/link]",
    "spreadsheet formula": '=HYPERLINK("http://x","0812345678")',
    "words between digits": "0812 FLOOD 99",
    "letter O for zero": "08123456789O",
    "Arabic-Indic digits": "\u0660\u0668\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669",
    "US number": "+1 202 555 0143",
    "UK premium rate": "+44 871 234 5678",
    "satellite phone": "+881 6 1234 5678",
    "Jakarta landline": "021 1234 5678",
}


def test_phone_input_must_be_a_whole_indonesian_mobile_number(record):
    from broadcast.subscribers.service import InvalidPhone, check_fields

    for what, raw in JUNK_PHONES.items():
        try:
            got = check_fields(phone=raw, admin_code="72.71").phone
        except InvalidPhone as exc:
            ok, outcome = bool(str(exc)), "refused with a reason"
        else:
            ok, outcome = False, f"ACCEPTED as {got}"
        record("phone input", f"subscriber phone from junk or abroad ({what})", outcome, ok=ok)
        assert ok, (what, outcome)
    from broadcast.subscribers.service import subscriber_phone

    for raw in ("0812 3456 7890", "0812-3456-7890", "(0812) 3456.7890", "+62 812 3456 7890", "6281234567890"):
        assert subscriber_phone(raw) == "+6281234567890", raw
    assert subscriber_phone("+44 7911 123456", allow_foreign=True) == "+447911123456"
    with pytest.raises(InvalidPhone, match="mobile"):
        subscriber_phone("+44 871 234 5678", allow_foreign=True)


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_subscriber_import_audits_each_change_under_a_named_user(session, record):
    from broadcast.audit.models import AuditEntry
    from broadcast.audit.service import verify_chain
    from broadcast.subscribers import importing
    from broadcast.subscribers.models import Subscriber
    from tests.factories import make_team

    team = make_team(session)
    first = "phone,language,admin_code\n081200000001,id,72.71\n081200000002,id,72.71\n"
    with pytest.raises(importing.ImportNeedsActor):
        importing.import_rows(session, importing.read_csv(first))
    importing.import_rows(session, importing.read_csv(first), actor_id=team["admin"].id)
    moved = "phone,language,admin_code\n081200000001,en,33.15\n081200000002,id,72.71\n"
    importing.import_rows(session, importing.read_csv(moved), actor_id=team["operator"].id)
    session.flush()
    sub = session.scalar(sa.select(Subscriber).where(Subscriber.phone == "+6281200000001"))
    entries = session.scalars(
        sa.select(AuditEntry).where(AuditEntry.subject_type == "subscriber", AuditEntry.subject_id == sub.id)
        .order_by(AuditEntry.id)
    ).all()
    update = [e for e in entries if e.before is not None]
    ok = (
        len(entries) == 2
        and entries[0].actor_id == team["admin"].id
        and len(update) == 1
        and update[0].actor_id == team["operator"].id
        and update[0].before["admin_code"] == "72.71" and update[0].after["admin_code"] == "33.15"
        and update[0].before["language"] == "id" and update[0].after["language"] == "en"
        and "+6281200000001" not in str(update[0].after)  # masked, as everywhere in the audit log
    )
    record("subscriber audit", "re-import moves a subscriber to another kabupaten and language",
           "own entry with actor, before and after" if ok else "NO PER-SUBSCRIBER ENTRY", ok=ok)
    assert ok, [(e.action, e.actor_id, e.before, e.after) for e in entries]
    # The unchanged subscriber got no second entry; the chain still verifies.
    other = session.scalar(sa.select(Subscriber).where(Subscriber.phone == "+6281200000002"))
    assert session.scalar(
        sa.select(sa.func.count()).select_from(AuditEntry).where(AuditEntry.subject_id == other.id,
                                                                 AuditEntry.subject_type == "subscriber")
    ) == 1
    assert verify_chain(session).ok


def test_subscriber_import_command_survives_markup_and_huge_fields(sqlite_dbs, tmp_path, record):
    from broadcast.db import session_scope
    from broadcast.users.models import Role
    from tests.factories import make_user

    url = sqlite_dbs.fresh()
    engine = make_engine(url)
    with session_scope(engine) as s:
        make_user(s, "admin.import", Role.ADMIN, None)
    engine.dispose()
    cases = {
        "rich markup in a phone ([/x])": "phone,admin_code\n[/x],72.71\n",
        "a 131k-character field": "phone,admin_code\n" + "0" * 140_000 + ",72.71\n",
    }
    for what, text in cases.items():
        path = tmp_path / "in.csv"
        path.write_text(text)
        res = run("subscribers", "import", str(path), "--actor", "admin.import", cwd=tmp_path,
                  BROADCAST_DATABASE_URL=url)
        ok = res.returncode in (1, 2) and "Traceback" not in res.stderr and ("line" in res.stdout)
        record("bad input", f"subscribers import with {what}", "refused with the line" if ok else "CRASHED", ok=ok)
        assert ok, res.stdout + res.stderr
    assert _drafts(url) == 0


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_a_non_ascii_digit_after_daftar_is_not_a_500(session, record):
    from broadcast.webhooks.service import handle_inbound_sms
    from channels.base import InboundEvent

    sender = "+6281299900555"

    def sms(n: int, body: str) -> str:
        sid = f"SM{n:032d}"
        event = InboundEvent("sms", sid, sender, body, {"From": sender, "Body": body, "MessageSid": sid})
        return handle_inbound_sms(session, event=event, author_key=b"k" * 32, advanced_opt_out=False)

    assert "1)" in sms(1, "DAFTAR Tondo")
    # A foreign sender registering by SMS gets a reason, not a 500 (subscribers are Indonesian mobiles).
    sender = "+447911123456"
    assert "seluler Indonesia" in sms(90, "DAFTAR Palu Barat")
    sender = "+6281299900555"
    for n, digit in enumerate(("\u1369", "\u00b2", "\u0663"), start=2):  # Ethiopic one, superscript two, Arabic 3
        try:
            reply = sms(n, digit)
            ok = bool(reply)
        except ValueError:
            ok = False
        record("bad input", f"SMS choice reply with a non-ASCII digit ({digit!r})", "answered" if ok else "500",
               ok=ok)
        assert ok


# ---------------------------------------------------------------- /readyz and /healthz


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_readyz_is_computed_once_for_concurrent_callers_and_healthz_hides_the_version(
    db_url, redis_url, engine, monkeypatch, record
):
    import threading
    import time

    from broadcast.api import ops
    from tests.reliability.helpers import world

    calls = {"n": 0}
    real = ops.readiness

    def counted(*args, **kwargs):
        calls["n"] += 1
        time.sleep(0.5)  # a worker ping takes about this long: callers overlap
        return real(*args, **kwargs)

    monkeypatch.setattr(ops, "readiness", counted)
    with world(db_url, redis_url, engine) as w:
        start = threading.Barrier(40)
        codes: list[int] = []

        def call() -> None:
            start.wait()
            codes.append(w.client.get("/readyz").status_code)

        threads = [threading.Thread(target=call, daemon=True) for _ in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)  # a caller stuck behind the others counts as a failure, not a hung suite
        ok = len(codes) == 40 and calls["n"] <= 4
        record("operations", "40 concurrent anonymous /readyz calls", f"{calls['n']} dependency checks",
               ok=ok)
        assert ok, calls
        route = next(r for r in ops.router.routes if getattr(r, "path", "") == "/readyz")
        deps = {d.call.__name__ for d in route.dependant.dependencies}
        assert "get_session" not in deps  # no database session held per caller

        anonymous = w.client.get("/healthz").json()
        staff = w.client.get("/healthz", headers=w.headers("analyst")).json()
        ok = "version" not in anonymous and "environment" not in anonymous and "version" in staff
        record("operations", "anonymous /healthz", "status only" if ok else "VERSION AND ENVIRONMENT SHOWN", ok=ok)
        assert ok, (anonymous, staff)


# ---------------------------------------------------------------- privacy: photos, caching, redaction


def _jpeg_with_gps() -> bytes:
    import io

    from PIL import Image

    img = Image.new("RGB", (64, 48), (10, 120, 200))
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"  # Make
    exif[0xA431] = "SERIAL-123456789"  # BodySerialNumber
    gps = {1: "S", 2: (0.0, 53.0, 51.0), 3: "E", 4: (119.0, 52.0, 12.0)}  # Palu
    exif[0x8825] = gps
    out = io.BytesIO()
    img.save(out, format="JPEG", exif=exif.tobytes())
    return out.getvalue()


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_lapor_photos_lose_their_metadata_and_private_pages_are_not_stored(db_url, redis_url, engine, record):
    import io

    from PIL import Image

    from tests.reliability.helpers import world

    original = _jpeg_with_gps()
    with Image.open(io.BytesIO(original)) as img:
        assert img.getexif().get(0x8825)  # the upload really carries a GPS block
    with world(db_url, redis_url, engine, report_form_min_seconds=0) as w:
        page = w.client.get("/lapor").text
        token = page.split('name="token" value="')[1].split('"')[0]
        r = w.client.post("/lapor", data={"text": "Banjir di depan rumah saya", "token": token},
                          files={"photo": ("a.jpg", original, "image/jpeg")})
        assert r.status_code in (200, 303), r.text
        with engine.connect() as c:
            media = c.execute(sa.text("SELECT media FROM reports")).scalar_one()
        path = (media if isinstance(media, list) else __import__("json").loads(media))[0]
        served = w.client.get(path, headers=w.headers("analyst"))
        assert served.status_code == 200
        with Image.open(io.BytesIO(served.content)) as img:
            exif = dict(img.getexif())
            leftover = [k for k in ("exif", "icc_profile", "xmp", "comment") if img.info.get(k)]
        ok = served.content != original and not exif and not leftover and b"SERIAL-123456789" not in served.content
        record("privacy", "/lapor photo with EXIF GPS position and camera serial", "re-encoded without metadata"
               if ok else "SERVED WITH METADATA", ok=ok)
        assert ok, (exif, leftover)

        private = [path, "/pusdalops", "/konsol/hoaks", "/api/v1/subscribers", "/api/v1/reports/export.geojson",
                   "/api/v1/reports/export.csv",
                   "/api/v1/reports"]
        for url in private:
            resp = w.client.get(url, headers=w.headers("admin"))
            ok = resp.headers.get("cache-control") == "no-store"
            record("privacy", f"Cache-Control on a staff page or file with personal data ({url.split('?')[0][:30]})",
                   "no-store" if ok else f"MISSING ({resp.headers.get('cache-control')})", ok=ok)
            assert ok, (url, resp.status_code, resp.headers.get("cache-control"))


def test_hoax_redaction_catches_numbers_with_any_separator(record):
    from broadcast.trust.service import redact_numbers

    for number in ("0812_3456_7890", "0812,3456,7890", "0812\u00b73456\u00b77890", "0812*3456*7890",
                   "0812/3456/7890", "+62 812\u20133456\u20137890"):
        text = f"Sebarkan! Hubungi {number} untuk bantuan tsunami"
        out = redact_numbers(text)
        ok = "3456" not in out and "[nomor disembunyikan]" in out
        record("privacy", f"hoax text phone number written {number}", "redacted" if ok else "SHOWN", ok=ok)
        assert ok, out
    assert redact_numbers("ada 12 rumah dan 345 warga") == "ada 12 rumah dan 345 warga"


# ---------------------------------------------------------------- hoax console and SMS HOAKS


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_hoax_grouping_scores_a_linear_number_of_pairs(session, monkeypatch, record):
    from rapidfuzz import fuzz

    from broadcast.trust import service as trust
    from tests.hoax_corpus import RUMOURS, hoax_texts

    n = 1001
    for k, text in enumerate(hoax_texts(n)):
        trust.store_hoax(session, source="web", text=text, external_id=f"web-{k}")
    session.flush()
    calls = {"n": 0}

    class Counting:
        @staticmethod
        def token_set_ratio(a, b, **kwargs):
            calls["n"] += 1
            return fuzz.token_set_ratio(a, b, **kwargs)

    monkeypatch.setattr(trust, "fuzz", Counting)
    clusters = trust.cluster_hoaxes(session)
    sizes = [c.size for c in clusters]
    ok = calls["n"] <= 20 * n and sizes[: len(RUMOURS)] == sorted(sizes[: len(RUMOURS)], reverse=True)
    ok = ok and sum(sizes[: len(RUMOURS)]) == n - n // 10 and len(clusters) == len(RUMOURS) + n // 10
    record("hoax console", f"{n:,} forwarded fakes grouped", f"{calls['n']:,} pairs scored (all pairs: "
           f"{n * (n - 1) // 2:,})" if ok else f"{calls['n']:,} PAIRS SCORED", ok=ok)
    assert ok, (calls, sizes[:10], len(clusters))


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_sms_hoaks_is_limited_per_sender(session, record):
    from broadcast.trust.models import HoaxReport
    from broadcast.webhooks.service import handle_inbound_sms
    from channels.base import InboundEvent

    sender = "+6281299900444"
    replies = []
    for n in range(25):
        sid = f"SM{n:032d}"
        body = f"HOAKS pesan palsu nomor {n} tentang tsunami"
        event = InboundEvent("sms", sid, sender, body, {"From": sender, "Body": body, "MessageSid": sid})
        replies.append(handle_inbound_sms(session, event=event, author_key=b"k" * 32, advanced_opt_out=False))
    stored = session.scalar(sa.select(sa.func.count()).select_from(HoaxReport))
    ok = stored == 10 and "Batas" in replies[-1]
    record("hoax console", "25 SMS HOAKS from one sender in an hour", f"{stored} stored, then a limit reply"
           if ok else f"{stored} STORED", ok=ok)
    assert ok, (stored, replies[-1])


# ---------------------------------------------------------------- low findings: partner intake, sign-in CSRF


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_partner_times_from_the_future_and_long_ids_are_handled(db_url, redis_url, engine, record):
    from tests.reliability.helpers import world

    long_name = "badan-penanggulangan-bencana-daerah-" + "x" * 120
    keys = {long_name: "partner-key-long-name-0123456789"}
    with world(db_url, redis_url, engine, report_api_keys=keys) as w:
        key = {"X-API-Key": keys[long_name]}
        r = w.client.post("/api/v1/reports", headers=key,
                          json={"text": "banjir di pasar", "occurred_at": "2099-01-01T00:00:00+07:00"})
        ok = r.status_code == 422 and "future" in r.text
        record("bad input", "partner report with occurred_at in 2099", "422" if ok else f"{r.status_code} stored",
               ok=ok)
        assert ok, r.text
        ids = ["a" * 99 + "1", "a" * 99 + "2"]  # differ only past the 128th character after the prefix
        answers = [w.client.post("/api/v1/reports", headers=key, json={"text": "banjir di pasar", "external_id": i})
                   for i in ids]
        assert all(a.status_code == 202 for a in answers), [a.text for a in answers]
        created = [a.json()["created"] for a in answers]
        again = w.client.post("/api/v1/reports", headers=key, json={"text": "banjir", "external_id": ids[0]}).json()
        ok = created == [True, True] and again["created"] is False and again["id"] == answers[0].json()["id"]
        record("bad input", "two long partner ids that differ after 128 characters", "two reports" if ok
               else "MERGED", ok=ok)
        assert ok, (created, again)


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_sign_in_form_needs_its_csrf_token(db_url, redis_url, engine, record):
    from tests.factories import PASSWORD, login_form
    from tests.reliability.helpers import world

    with world(db_url, redis_url, engine) as w:
        # Another site posting the attacker's credentials: no token, or a token without its cookie.
        forged = w.client.post("/masuk", data={"username": "op.palu", "password": PASSWORD}, follow_redirects=False)
        form = login_form(w.client, "op.palu")
        w.client.cookies.clear()
        replayed = w.client.post("/masuk", data=form, follow_redirects=False)
        ok = forged.status_code == 403 and replayed.status_code == 403 and "broadcast_session" not in str(
            forged.headers.get_list("set-cookie")) + str(replayed.headers.get_list("set-cookie"))
        record("security basics", "login CSRF: cross-site sign-in form post", "403, no session" if ok
               else "SIGNED IN", ok=ok)
        assert ok, (forged.status_code, replayed.status_code)
        good = w.client.post("/masuk", data=login_form(w.client, "op.palu"), follow_redirects=False)
        assert good.status_code == 303


# Headers that differ between any two answers (time, size of the time, per-request ids); everything else must match.
_VOLATILE_HEADERS = {"date", "content-length", "x-request-id"}


def _answer_bytes(r) -> tuple[int, bytes, dict[str, str]]:  # type: ignore[no-untyped-def]
    body = re.sub(rb'"expires_at":"[^"]*"', b'"expires_at":"<t>"', r.content)
    return r.status_code, body, {k: v for k, v in r.headers.items() if k.lower() not in _VOLATILE_HEADERS}


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)  # the answer is built the same on both databases
def test_registering_a_number_never_tells_whether_it_is_registered_elsewhere(db_url, redis_url, engine, record):
    from broadcast.subscribers.models import ConsentRequest, Subscriber
    from tests.consent import send_confirmations
    from tests.reliability.helpers import world

    with world(db_url, redis_url, engine) as w:
        h = w.headers("operator")  # Kota Palu
        with engine.connect() as c:
            phones = dict(c.execute(sa.select(Subscriber.id, Subscriber.phone)).all())
        grobogan, palu = phones[w.subscribers["grobogan"][0]], phones[w.subscribers["palu"][1]]
        numbers = {"new": "+6281299988801", "registered elsewhere (Grobogan)": grobogan, "registered here": palu}
        created = {what: w.client.post("/api/v1/subscribers", json={"phone": phone, "admin_code": "72.71.01.1004"},
                                       headers=h) for what, phone in numbers.items()}
        patched = {what: w.client.patch(f"/api/v1/subscribers/{w.subscribers['palu'][0]}", json={"phone": phone},
                                        headers=h) for what, phone in (("new", "+6281299988802"),
                                                                       ("registered elsewhere (Grobogan)", grobogan))}
        for verb, answers in (("POST", created), ("PATCH to", patched)):
            baseline = _answer_bytes(answers["new"])
            for what, r in answers.items():
                ok = r.status_code == 202 and _answer_bytes(r) == baseline
                record("privacy", f"staff {verb} a number {what}: answer vs a new number",
                       "identical 202" if ok else f"DIFFERS ({r.status_code} {r.text[:60]})", ok=ok)
                assert ok, (what, _answer_bytes(r), baseline)
        with engine.connect() as c:
            moved = c.scalar(sa.select(Subscriber.admin_code).where(Subscriber.phone == grobogan))
        ok = moved == "33.15.01.2001"
        record("privacy", "staff request for another kabupaten's subscriber moves them without their YA",
               "unchanged" if ok else f"MOVED to {moved}", ok=ok)
        assert ok
        # The confirmation SMS cannot be made a spam cannon: ten more requests, one SMS per number.
        again = [w.client.post("/api/v1/subscribers", json={"phone": numbers["new"], "admin_code": "72.71"},
                               headers=h) for _ in range(10)]
        sent = send_confirmations(engine)
        per_number = {n: sum(1 for m, _ in sent if m == n) for n in {m for m, _ in sent}}
        with engine.connect() as c:
            rows = c.scalar(sa.select(sa.func.count()).select_from(ConsentRequest)
                            .where(ConsentRequest.phone == numbers["new"]))
        ok = all(_answer_bytes(r) == _answer_bytes(created["new"]) for r in again) and per_number.get(
            numbers["new"]) == 1 and rows == 1 and max(per_number.values()) == 1
        record("privacy", "11 staff requests for one number within a day", "1 confirmation SMS, same answer"
               if ok else f"{per_number.get(numbers['new'])} SMS", ok=ok, tries=11)
        assert ok, (per_number, rows)

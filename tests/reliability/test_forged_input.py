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

from broadcast.db import make_engine
from broadcast.trust import signing
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
    from broadcast.alerts import importing
    from tests.factories import make_team

    team = make_team(session)
    pinned = {TRUSTED: keypair.cert_pem}
    exact = importing.import_document(
        session, forged_cap(), author=team["admin"], origin="cap-import", fetch=None, trusted_certs=pinned
    )
    assert not exact.imported and "tanda tangan" in exact.skipped[0].reason
    for n, (what, sender) in enumerate(LOOK_ALIKES.items()):
        result = importing.import_document(
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
    other = importing.import_document(
        session, forged_cap("cap@other.example", identifier="OTHER-1"), author=team["admin"], origin="cap-import",
        fetch=None, trusted_certs=pinned,
    )
    assert len(other.imported) == 1, other.skipped

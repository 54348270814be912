"""XML-DSig for CAP: enveloped signatures on the CAP we publish, and checks of the ones other agencies send.

Our signatures are RSA-SHA256 with exclusive canonicalisation, appended as the last child of <alert>, where
CAP 1.2 allows `xmldsig#` elements. Outside production a self-signed development key is created in the data
directory on first use (never committed); production configures a key and certificate by path.
"""

from __future__ import annotations

import base64
import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml import methods
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from signxml.exceptions import InvalidInput, SignXMLException
from signxml.signer import XMLSigner
from signxml.verifier import SignatureConfiguration, XMLVerifier

log = logging.getLogger(__name__)

DS = "http://www.w3.org/2000/09/xmldsig#"
_NS = {"ds": DS}
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
DEV_DIR = "cap-signing"
# Older agency signatures (Environment Canada, CISN) are RSA-SHA1; we accept them on import as "legacy", never sign
# with them.
_LEGACY_CONFIG = SignatureConfiguration(
    signature_methods=frozenset(SignatureMethod),
    digest_algorithms=frozenset(DigestAlgorithm),
)


# What a pinned sender may sign with: SHA-256 or stronger, public-key algorithms only (an HMAC needs no certificate,
# SHA-1 and SHA-224 are refused).
STRONG_SIGNATURE_METHODS = frozenset(
    {
        SignatureMethod.RSA_SHA256,
        SignatureMethod.RSA_SHA384,
        SignatureMethod.RSA_SHA512,
        SignatureMethod.ECDSA_SHA256,
        SignatureMethod.ECDSA_SHA384,
        SignatureMethod.ECDSA_SHA512,
        SignatureMethod.ECDSA_SHA3_256,
        SignatureMethod.ECDSA_SHA3_384,
        SignatureMethod.ECDSA_SHA3_512,
        SignatureMethod.SHA256_RSA_MGF1,
        SignatureMethod.SHA384_RSA_MGF1,
        SignatureMethod.SHA512_RSA_MGF1,
        SignatureMethod.SHA3_256_RSA_MGF1,
        SignatureMethod.SHA3_384_RSA_MGF1,
        SignatureMethod.SHA3_512_RSA_MGF1,
    }
)
STRONG_DIGESTS = frozenset(
    {
        DigestAlgorithm.SHA256,
        DigestAlgorithm.SHA384,
        DigestAlgorithm.SHA512,
        DigestAlgorithm.SHA3_256,
        DigestAlgorithm.SHA3_384,
        DigestAlgorithm.SHA3_512,
    }
)
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"


class SignatureError(Exception):
    """A CAP document's signature is missing, malformed or does not match."""


@dataclass(frozen=True, slots=True)
class KeyPair:
    key_pem: bytes
    cert_pem: bytes


def _parser() -> etree.XMLParser:
    # No entities, no network, no DTDs: the same stance as defusedxml for the parse signxml needs.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def create_dev_keypair(directory: Path, *, common_name: str) -> KeyPair:
    """The development key and self-signed certificate in `directory`, created on first use (mode 0600 key)."""
    key_path, cert_path = directory / "key.pem", directory / "cert.pem"
    if key_path.exists() and cert_path.exists():
        return KeyPair(key_path.read_bytes(), cert_path.read_bytes())
    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64] or "broadcast-dev")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=730))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_path.write_bytes(key_pem)
    key_path.chmod(0o600)
    cert_path.write_bytes(cert_pem)
    log.info("created a development CAP signing key in %s", directory)
    return KeyPair(key_pem, cert_pem)


def load_keypair(key_path: Path, cert_path: Path) -> KeyPair:
    """A configured key and certificate, read from PEM files.

    Raises: OSError, ValueError (not a PEM key/certificate).
    """
    key_pem, cert_pem = key_path.read_bytes(), cert_path.read_bytes()
    serialization.load_pem_private_key(key_pem, password=None)
    x509.load_pem_x509_certificate(cert_pem)
    return KeyPair(key_pem, cert_pem)


def sign_cap(data: bytes, keypair: KeyPair) -> bytes:
    """The CAP document with an enveloped RSA-SHA256 signature (and the certificate) as the last child of <alert>."""
    root = etree.fromstring(data, parser=_parser())
    signer = XMLSigner(
        method=methods.enveloped,
        signature_algorithm="rsa-sha256",
        digest_algorithm="sha256",
        c14n_algorithm=EXC_C14N,
    )
    signed = signer.sign(root, key=keypair.key_pem, cert=keypair.cert_pem.decode("ascii"))  # PEM: ASCII text
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    """One ds:Signature of a document: whether it matches, with which key, and how far it can be trusted."""

    index: int
    valid: bool
    algorithm: str
    key_source: str  # "configured certificate", "embedded certificate", "embedded key value"
    subject: str | None = None
    trusted: bool = False  # verified with a certificate we were given, not one the document carried
    legacy: bool = False  # SHA-1
    error: str | None = None


class _NthSignature(XMLVerifier):
    """signxml checks the first ds:Signature it finds; a relayed CAP (e.g. NAADS) carries several in order."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self._index = index

    def _get_signature(self, root: etree._Element) -> etree._Element:
        found = root.findall("ds:Signature", namespaces=_NS)
        if self._index >= len(found):
            raise InvalidInput("no such signature")
        return found[self._index]


def _embedded_cert(signature: etree._Element) -> x509.Certificate | None:
    text = signature.findtext("ds:KeyInfo/ds:X509Data/ds:X509Certificate", namespaces=_NS)
    if not text:
        return None
    return x509.load_der_x509_certificate(base64.b64decode("".join(text.split())))


def _sent_time(root: etree._Element) -> datetime | None:
    for el in root:
        if isinstance(el.tag, str) and etree.QName(el).localname == "sent" and el.text:
            try:
                return datetime.fromisoformat(el.text.strip())
            except ValueError:
                return None
    return None


def _as_signed(root: etree._Element, index: int) -> Iterator[tuple[etree._Element, int]]:
    """The document as signature `index` may have been made over: with every other signature (a relay that signed
    after the author, wherever it put its signature), or with none of them (the author signed first)."""
    yield etree.fromstring(etree.tostring(root), parser=_parser()), index
    alone = etree.fromstring(etree.tostring(root), parser=_parser())
    for n, other in enumerate(alone.findall("ds:Signature", namespaces=_NS)):
        if n != index:
            alone.remove(other)
    yield alone, 0


def _covers_root(signed: etree._Element | None, root: etree._Element) -> bool:
    return signed is not None and isinstance(signed.tag, str) and signed.tag == root.tag


@dataclass(frozen=True, slots=True)
class VerifiedCap:
    """What a pinned sender signed: the canonical bytes of its `<alert>` (signature removed), and the check."""

    signed_data: bytes
    check: SignatureCheck


def check_trusted(data: bytes, *, cert_pem: bytes, at: datetime | None = None) -> VerifiedCap:
    """The `<alert>` a pinned sender signed, as signxml verified it: exactly one enveloped signature, its only
    reference the whole document (`URI=""`), SHA-256 or stronger, made with `cert_pem`, which must be valid `at`
    (now by default: the receive time, never the document's own <sent>).

    Raises: SignatureError naming the rule that failed.
    """
    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise SignatureError(f"not XML: {exc}") from exc
    if etree.QName(root).localname != "alert":
        raise SignatureError("akar dokumen bukan <alert> / the document root is not <alert>")
    signatures = list(root.iter(f"{{{DS}}}Signature"))
    if not signatures:
        raise SignatureError("tidak bertanda tangan / the document is not signed")
    if len(signatures) != 1:
        raise SignatureError(
            f"harus tepat satu tanda tangan, ada {len(signatures)} / exactly one signature expected, found "
            f"{len(signatures)}"
        )
    signature = signatures[0]
    if signature.getparent() is not root:
        raise SignatureError("tanda tangan bukan anak <alert> / the signature is not enveloped in <alert>")
    references = signature.findall("ds:SignedInfo/ds:Reference", namespaces=_NS)
    if len(references) != 1 or references[0].get("URI") != "":
        raise SignatureError(
            'tanda tangan harus mencakup seluruh <alert> (Reference URI="") / the signature must cover the whole '
            '<alert> with one Reference URI=""'
        )
    transforms = [t.get("Algorithm") for t in references[0].findall("ds:Transforms/ds:Transform", namespaces=_NS)]
    if ENVELOPED not in transforms:
        raise SignatureError("tanda tangan bukan enveloped / the signature is not an enveloped signature")
    method = signature.find("ds:SignedInfo/ds:SignatureMethod", namespaces=_NS)
    alg = method.get("Algorithm", "") if method is not None else ""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise SignatureError(f"sertifikat pengirim tidak terbaca / unreadable sender certificate: {exc}") from exc
    when = (at or datetime.now(UTC)).astimezone(UTC)
    if not (cert.not_valid_before_utc <= when <= cert.not_valid_after_utc):
        raise SignatureError(
            f"sertifikat pengirim tidak berlaku pada {when.isoformat(timespec='seconds')} / the sender's certificate "
            f"is not valid at {when.isoformat(timespec='seconds')} (valid {cert.not_valid_before_utc.isoformat()} to "
            f"{cert.not_valid_after_utc.isoformat()})"
        )
    config = SignatureConfiguration(
        signature_methods=STRONG_SIGNATURE_METHODS,
        digest_algorithms=STRONG_DIGESTS,
        require_x509=True,
        expect_references=1,
        verification_time=when,
    )
    try:
        result = XMLVerifier().verify(root, x509_cert=cert, expect_config=config, validate_schema=False)
    except (SignXMLException, InvalidSignature, ValueError) as exc:
        raise SignatureError(
            f"tanda tangan tidak cocok / no valid signature by the sender's certificate: {str(exc)[:300]}"
        ) from exc
    if isinstance(result, list) or not _covers_root(result.signed_xml, root):
        raise SignatureError("tanda tangan tidak mencakup <alert> / the signature does not cover the <alert>")
    check = SignatureCheck(0, True, alg, "configured certificate", cert.subject.rfc4514_string(), trusted=True)
    return VerifiedCap(result.signed_data, check)


def verify_cap(data: bytes, *, cert_pem: bytes | None = None, at_sent_time: bool = False) -> list[SignatureCheck]:
    """Check the document's enveloped signatures.

    With `cert_pem` the document must pass `check_trusted` (one enveloped signature over the whole <alert>, strong
    algorithms, that certificate valid now): one `trusted` check, or one failed check per signature found. Without
    it, every signature is checked in order against the certificate or key it carries (proving integrity, not who
    signed), each against the document as it was when it was signed, and counts only if it covers the <alert>
    root; with `at_sent_time` those carried certificates are judged at the CAP <sent> time (archived messages).
    Raises: SignatureError when the document is not XML.
    """
    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise SignatureError(f"not XML: {exc}") from exc
    signatures = list(root.iter(f"{{{DS}}}Signature"))
    if cert_pem is not None:
        try:
            return [check_trusted(data, cert_pem=cert_pem).check]
        except SignatureError as exc:
            subject = None
            with contextlib.suppress(ValueError):
                subject = x509.load_pem_x509_certificate(cert_pem).subject.rfc4514_string()
            return [
                SignatureCheck(n, False, _algorithm(sig), "configured certificate", subject, error=str(exc))
                for n, sig in enumerate(signatures)
            ]
    signatures = root.findall("ds:Signature", namespaces=_NS)
    when = _sent_time(root) if at_sent_time else None
    checks = []
    for index, signature in enumerate(signatures):
        alg = _algorithm(signature)
        legacy = "sha1" in alg.lower()
        try:
            embedded = _embedded_cert(signature)
        except ValueError:
            embedded = None
        source = "embedded certificate" if embedded else "embedded key value"
        subject = embedded.subject.rfc4514_string() if embedded is not None else None
        config = SignatureConfiguration(
            signature_methods=_LEGACY_CONFIG.signature_methods,
            digest_algorithms=_LEGACY_CONFIG.digest_algorithms,
            require_x509=embedded is not None,
            verification_time=when,
        )
        error = ""
        for doc, position in _as_signed(root, index):
            try:
                result = _NthSignature(position).verify(
                    doc,
                    x509_cert=embedded,
                    expect_config=config,
                    # Some agencies' Id attributes ("NAADS Signature") are not xs:ID; the check is cryptographic.
                    validate_schema=False,
                )
            except (SignXMLException, InvalidSignature, ValueError) as exc:
                error = error or str(exc)[:300] or type(exc).__name__
                continue
            if isinstance(result, list) or not _covers_root(result.signed_xml, doc):
                error = error or "tanda tangan tidak mencakup <alert> / the signature does not cover the <alert>"
                continue
            checks.append(SignatureCheck(index, True, alg, source, subject, False, legacy))
            break
        else:
            checks.append(SignatureCheck(index, False, alg, source, subject, False, legacy, error))
    return checks


def _algorithm(signature: etree._Element) -> str:
    method = signature.find("ds:SignedInfo/ds:SignatureMethod", namespaces=_NS)
    return method.get("Algorithm", "") if method is not None else ""

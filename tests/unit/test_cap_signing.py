"""XML-DSig on CAP: our enveloped signatures, and the real signed CAP files other agencies published."""

from pathlib import Path

import pytest

from broadcast.cap import signing, validation

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures/cap"
EC_SIGNED = FIXTURES / "real_world/ca_ec_snowfall_signed.cap"
CISN_SIGNED = FIXTURES / "real_world/us_cisn_earthquake_signed_cap11.cap"
OASIS = FIXTURES / "oasis_examples/a2_severe_thunderstorm_warning.xml"


@pytest.fixture(scope="module")
def keypair(tmp_path_factory):
    return signing.create_dev_keypair(tmp_path_factory.mktemp("keys"), common_name="bpbd@palu.example.id")


def test_dev_keypair_is_created_once_and_the_key_is_private(tmp_path):
    first = signing.create_dev_keypair(tmp_path / "k", common_name="x")
    assert (tmp_path / "k/key.pem").stat().st_mode & 0o077 == 0
    assert signing.create_dev_keypair(tmp_path / "k", common_name="x") == first


def test_our_signature_verifies_keeps_cap_valid_and_a_modified_copy_fails(keypair, tmp_path):
    signed = signing.sign_cap(OASIS.read_bytes(), keypair)
    assert validation.parse_cap(signed).identifier  # still schema-valid CAP 1.2 with the ds:Signature inside
    checks = signing.verify_cap(signed, cert_pem=keypair.cert_pem)
    assert [(c.valid, c.trusted, c.legacy) for c in checks] == [(True, True, False)]
    assert "rsa-sha256" in checks[0].algorithm
    assert signing.verify_cap(signed)[0].valid  # with the certificate the signature carries
    for before, after in ((b"Severe", b"Minor"), (b"<sent>2003", b"<sent>2004")):
        assert before in signed
        assert not signing.verify_cap(signed.replace(before, after, 1), cert_pem=keypair.cert_pem)[0].valid


def test_a_signature_by_another_key_is_not_trusted(keypair, tmp_path):
    other = signing.create_dev_keypair(tmp_path, common_name="someone-else")
    signed = signing.sign_cap(OASIS.read_bytes(), other)
    assert not signing.verify_cap(signed, cert_pem=keypair.cert_pem)[0].valid
    with pytest.raises(signing.SignatureError):
        signing.check_trusted(signed, cert_pem=keypair.cert_pem)
    with pytest.raises(signing.SignatureError, match="not signed"):
        signing.check_trusted(OASIS.read_bytes(), cert_pem=keypair.cert_pem)


def test_environment_canada_signature_verifies_with_its_embedded_certificate_at_sent_time():
    data = EC_SIGNED.read_bytes()
    checks = signing.verify_cap(data, at_sent_time=True)
    assert len(checks) == 2
    naads, ec = checks
    # Environment Canada's own signature (RSA-SHA1, exclusive c14n) still matches the document.
    assert ec.valid and ec.legacy and "Environment Canada" in ec.subject and not ec.trusted
    # The NAADS relay signature in this copy no longer matches (the document was re-serialised after it).
    assert not naads.valid and "pelmorex" in naads.subject
    # Judged today, the 2015 certificate has expired.
    assert not signing.verify_cap(data)[1].valid


def test_a_modified_real_signed_cap_fails():
    data = EC_SIGNED.read_bytes()
    for before, after in ((b"<severity>Moderate", b"<severity>Minor"), (b"snowfall", b"rainfall")):
        assert before in data
        assert not any(c.valid for c in signing.verify_cap(data.replace(before, after, 1), at_sent_time=True))


def test_cisn_key_value_signature_does_not_verify():
    # Measured: this copy's RSA-SHA1 KeyValue signature (c14n with comments) does not match its document.
    checks = signing.verify_cap(CISN_SIGNED.read_bytes(), at_sent_time=True)
    assert len(checks) == 1 and checks[0].key_source == "embedded key value" and not checks[0].valid


def test_not_xml_is_a_clear_error():
    with pytest.raises(signing.SignatureError):
        signing.verify_cap(b"<alert")

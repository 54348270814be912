"""CAP parsing, validation and export against the official schema and real messages."""

from pathlib import Path

import pytest

from broadcast.alerts import capmap
from broadcast.alerts.models import Alert, AlertArea, AlertInfo
from broadcast.cap import codec, validation
from broadcast.cap.validation import validate_document

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
VALID = sorted(
    [p for d in ("cap/oasis_examples", "cap/real_world", "bmkg/cap") for p in (FIXTURES / d).iterdir()
     if p.name != "rs_rhmss_thunderstorm_update.xml"]
)
SCHEMA_INVALID = ["rs_rhmss_thunderstorm_update.xml"]
INVALID_DIR = sorted((FIXTURES / "cap/invalid").iterdir())


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_every_valid_real_message_round_trips_through_the_schema(path):
    original = validation.parse_cap(path.read_bytes())
    columns, infos, areas = capmap.message_to_parts(original)
    alert = Alert(**columns, infos=infos, areas=areas, channels=[], state="draft", author_id=1)
    exported = validation.export(capmap.alert_to_message(alert))
    again = validation.parse_cap(exported)
    assert again.version == "1.2"
    assert (again.identifier, again.sender, again.status, again.msg_type, again.references) == (
        original.identifier, original.sender, original.status, original.msg_type, original.references)
    assert again.sent == original.sent
    assert len(again.infos) == len(original.infos)
    for a, b in zip(again.infos, original.infos, strict=True):
        assert (a.language, a.event, a.urgency, a.severity, a.certainty, a.headline or a.event) == (
            b.language, b.event, b.urgency, b.severity, b.certainty, b.headline or b.event)
        assert a.categories == b.categories
        assert a.parameters == b.parameters
        assert [(x.area_desc, x.geocodes, [capmap._parse_circle(c) for c in x.circles]) for x in a.areas] == [
            (x.area_desc, x.geocodes, [capmap._parse_circle(c) for c in x.circles]) for x in b.areas]
        assert [len(x.polygons) for x in a.areas] == [len(x.polygons) for x in b.areas]


@pytest.mark.parametrize("name", SCHEMA_INVALID)
def test_schema_invalid_real_message_is_rejected_with_the_schema_reason(name):
    with pytest.raises(codec.CapError) as err:
        validation.parse_cap((FIXTURES / "cap/real_world" / name).read_bytes())
    assert "polygon" in err.value.reasons[0]


@pytest.mark.parametrize("path", INVALID_DIR, ids=lambda p: p.name)
def test_invalid_folder_each_has_a_reason(path):
    report = validate_document(path.read_bytes(), name=path.name)
    if path.name == "gcl_no_optional_fields_cap11.cap":
        # Schema-valid CAP 1.1, but nothing to broadcast: valid for the validator, refused by the importer.
        assert report.valid and "no <info>" in report.items[0].warnings[0]
        return
    assert not report.valid
    assert report.items[0].reasons and all(r.strip() for r in report.items[0].reasons)


def test_canada_errors_reason_names_references():
    report = validate_document((FIXTURES / "cap/invalid/gcl_canada_errors.cap").read_bytes())
    assert any("references" in r for r in report.items[0].reasons)


@pytest.mark.parametrize("path", sorted((FIXTURES / "cap/feeds").iterdir()), ids=lambda p: p.name)
def test_feeds_are_read(path):
    report = validate_document(path.read_bytes(), name=path.name)
    assert report.valid and report.items
    kinds = {i.kind for i in report.items}
    assert kinds <= {"feed-embedded", "feed-index", "feed-link"}


HOSTILE = {
    "billion laughs": b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 '
                      b'"&lol;&lol;&lol;&lol;">]><alert>&lol2;</alert>',
    "xxe": b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><alert>&x;</alert>',
    "dtd": b'<?xml version="1.0"?><!DOCTYPE alert SYSTEM "http://127.0.0.1:1/x.dtd"><alert/>',
    "malformed": b"<alert><identifier>x</alert>",
    "not xml": b"\xff\xfe\x00garbage",
    "empty": b"   ",
    "wrong namespace": b'<alert xmlns="urn:example:not-cap"><identifier>x</identifier></alert>',
    "no namespace": b"<alert><identifier>x</identifier></alert>",
    "html": b"<html><body>hello</body></html>",
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_or_malformed_xml_is_refused_with_a_reason(name):
    with pytest.raises(codec.CapError) as err:
        validation.parse_cap(HOSTILE[name])
    assert err.value.reasons
    if name in ("billion laughs", "xxe", "dtd"):
        assert "DTD" in err.value.reasons[0]


def test_oversized_document_is_refused():
    with pytest.raises(codec.CapError, match="larger"):
        codec.parse_document(b" " * (codec.MAX_DOCUMENT_BYTES + 1))


def _minimal(msg_type: str = "Alert", references: str | None = None,
             expires: str = "2026-11-26T12:00:00+07:00") -> bytes:
    refs = f"<references>{references}</references>" if references is not None else ""
    return (
        f'<alert xmlns="{codec.CAP12}"><identifier>T-1</identifier><sender>bpbd@example.id</sender>'
        f"<sent>2026-11-26T10:00:00+07:00</sent><status>Exercise</status><msgType>{msg_type}</msgType>"
        f"<scope>Public</scope>{refs}"
        "<info><language>id-ID</language><category>Met</category><event>Banjir</event>"
        "<urgency>Immediate</urgency><severity>Severe</severity><certainty>Likely</certainty>"
        f"<expires>{expires}</expires><headline>Banjir</headline><area><areaDesc>Palu</areaDesc></area>"
        "</info></alert>"
    ).encode()


def test_expires_before_sent_is_refused():
    with pytest.raises(codec.CapError, match="expires"):
        validation.parse_cap(_minimal(expires="2026-11-26T09:00:00+07:00"))


def test_update_without_references_is_refused_and_with_them_accepted():
    with pytest.raises(codec.CapError, match="references"):
        validation.parse_cap(_minimal("Update"))
    with pytest.raises(codec.CapError, match="malformed reference"):
        validation.parse_cap(_minimal("Update", references="justanid"))
    ok = validation.parse_cap(_minimal("Update", references="bpbd@example.id,T-0,2026-11-26T09:00:00+07:00"))
    assert ok.references.startswith("bpbd@example.id,T-0")


def test_export_refuses_invalid_content():
    alert = Alert(identifier="has space", sender="s", status="Exercise", msg_type="Alert", scope="Public",
                  sent=codec.parse_time("2026-11-26T10:00:00+07:00"), codes=[], channels=[], author_id=1,
                  infos=[AlertInfo(position=0, language="id-ID", category="Met", event="Banjir",
                                   urgency="Soon", severity="Severe", certainty="Likely", headline="h",
                                   parameters=[], response_types=[], event_codes=[], resources=[])],
                  areas=[AlertArea(area_desc="Palu", geocodes=["72.71"], polygons=[], circles=[],
                                   other_geocodes=[])])
    with pytest.raises(codec.CapError, match="urgency"):
        validation.export(capmap.alert_to_message(alert))


def test_kemendagri_geocode_round_trip():
    alert = Alert(identifier="BCAST-1", sender="bpbd@example.id", status="Exercise", msg_type="Alert",
                  scope="Public", sent=codec.parse_time("2026-11-26T10:00:00+07:00"), codes=[], channels=[],
                  author_id=1,
                  infos=[AlertInfo(position=0, language="id-ID", category="Met", event="Banjir",
                                   urgency="Immediate", severity="Severe", certainty="Likely", headline="h",
                                   parameters=[], response_types=[], event_codes=[], resources=[])],
                  areas=[AlertArea(area_desc="Palu", geocodes=["72.71"], polygons=[], circles=[],
                                   other_geocodes=[])])
    xml = validation.export(capmap.alert_to_message(alert))
    assert b"<valueName>KEMENDAGRI</valueName>" in xml and b"<value>72.71</value>" in xml
    _, _, areas = capmap.message_to_parts(validation.parse_cap(xml))
    assert areas[0].geocodes == ["72.71"]

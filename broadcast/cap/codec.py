"""CAP 1.2 (and 1.1 on input) as data: the message model, safe XML parsing, feeds, and XML output.

Every document is parsed with defusedxml (no DTDs, no entities, no external references) before anything else
looks at it. Nothing here validates: `broadcast.cap.validation` checks the schema and the rules, and is the
way in (`parse_cap`) and out (`export`) for everyone else.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as safe_fromstring

from broadcast.errors import Invalid

CAP12 = "urn:oasis:names:tc:emergency:cap:1.2"
CAP11 = "urn:oasis:names:tc:emergency:cap:1.1"
CAP10 = "http://www.incident.com/cap/1.0"
ATOM = "http://www.w3.org/2005/Atom"
XMLDSIG = "http://www.w3.org/2000/09/xmldsig#"
VERSIONS = {CAP12: "1.2", CAP11: "1.1"}
MAX_DOCUMENT_BYTES = 5_000_000
KEMENDAGRI = "KEMENDAGRI"
_CAP_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d([+-]\d\d:\d\d)$")


class CapError(Invalid):
    """A document that is not valid CAP, with every reason found."""

    code = "invalid-cap"

    def __init__(self, reasons: list[str]) -> None:
        self.reasons = reasons
        super().__init__("CAP tidak valid / invalid CAP: " + "; ".join(reasons[:5]))


@dataclass
class CapResource:
    resource_desc: str
    mime_type: str | None = None
    size: int | None = None
    uri: str | None = None
    deref_uri: str | None = None
    digest: str | None = None


@dataclass
class CapArea:
    area_desc: str
    polygons: list[str] = field(default_factory=list)  # "lat,lon lat,lon ..." closed rings
    circles: list[str] = field(default_factory=list)  # "lat,lon radius_km"
    geocodes: list[tuple[str, str]] = field(default_factory=list)
    altitude: float | None = None
    ceiling: float | None = None


@dataclass
class CapInfo:
    event: str
    urgency: str
    severity: str
    certainty: str
    categories: list[str] = field(default_factory=list)
    language: str = "en-US"
    response_types: list[str] = field(default_factory=list)
    audience: str | None = None
    event_codes: list[tuple[str, str]] = field(default_factory=list)
    effective: datetime | None = None
    onset: datetime | None = None
    expires: datetime | None = None
    sender_name: str | None = None
    headline: str | None = None
    description: str | None = None
    instruction: str | None = None
    web: str | None = None
    contact: str | None = None
    parameters: list[tuple[str, str]] = field(default_factory=list)
    resources: list[CapResource] = field(default_factory=list)
    areas: list[CapArea] = field(default_factory=list)


@dataclass
class CapMessage:
    identifier: str
    sender: str
    sent: datetime
    status: str
    msg_type: str
    scope: str
    source: str | None = None
    restriction: str | None = None
    addresses: str | None = None
    codes: list[str] = field(default_factory=list)
    note: str | None = None
    references: str | None = None
    incidents: str | None = None
    infos: list[CapInfo] = field(default_factory=list)
    version: str = "1.2"
    # Things worth telling the operator that do not make the message invalid.
    warnings: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- parsing


def parse_document(data: bytes) -> Element:
    """The root element of an XML document, parsed safely.

    Raises: CapError (too large, not XML, DTD or entities present).
    """
    if len(data) > MAX_DOCUMENT_BYTES:
        raise CapError([f"dokumen lebih dari {MAX_DOCUMENT_BYTES} byte / document larger than allowed"])
    if not data.strip():
        raise CapError(["dokumen kosong / empty document"])
    try:
        return safe_fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise CapError([f"DTD atau entitas XML tidak diizinkan / DTDs and XML entities are refused ({exc})"]) from exc
    except ET.ParseError as exc:
        raise CapError([f"XML rusak / malformed XML: {exc}"]) from exc


def namespace_of(element: Element) -> str:
    tag = element.tag
    return tag[1 : tag.index("}")] if isinstance(tag, str) and tag.startswith("{") else ""


def local_name(element: Element) -> str:
    tag = element.tag if isinstance(element.tag, str) else ""
    return tag.rsplit("}", 1)[-1]


@dataclass
class FeedItem:
    """One entry of an Atom or RSS feed: an embedded CAP alert, CAP index fields, or only a link."""

    entry_id: str
    title: str
    link: str | None
    embedded: Element | None = None
    index: CapMessage | None = None


def read_feed(root: Element) -> list[FeedItem]:
    """The items of an Atom or RSS 2.0 feed, each with what it carries of CAP.

    Raises: CapError (not a feed).
    """
    name = local_name(root)
    if name == "feed" and namespace_of(root) == ATOM:
        entries = root.findall(f"{{{ATOM}}}entry")
        return [_atom_item(e) for e in entries]
    if name == "rss":
        return [_rss_item(item) for item in root.iter("item")]
    raise CapError([f"bukan CAP, Atom atau RSS / not CAP, Atom or RSS: root <{name}>"])


def _embedded_alert(container: Element) -> Element | None:
    for el in container.iter():
        if local_name(el) == "alert" and namespace_of(el) in (CAP12, CAP11, CAP10):
            return el
    return None


def _atom_item(entry: Element) -> FeedItem:
    def a(n: str) -> str:
        return f"{{{ATOM}}}{n}"

    entry_id = (entry.findtext(a("id")) or "").strip()
    title = " ".join((entry.findtext(a("title")) or "").split())
    link_el = next((li for li in entry.findall(a("link")) if li.get("rel", "alternate") == "alternate"), None)
    link = link_el.get("href") if link_el is not None else None
    content = entry.find(a("content"))
    embedded = _embedded_alert(content) if content is not None else None
    index = None if embedded is not None else _index_message(entry, entry_id, title, link)
    return FeedItem(entry_id, title, link, embedded, index)


def _rss_item(item: Element) -> FeedItem:
    guid = (item.findtext("guid") or item.findtext("link") or "").strip()
    title = " ".join((item.findtext("title") or "").split())
    link = (item.findtext("link") or "").strip() or None
    return FeedItem(guid, title, link, _embedded_alert(item), None)


def _index_message(entry: Element, entry_id: str, title: str, link: str | None) -> CapMessage | None:
    """A CAP message rebuilt from the `cap:` extension elements of an index entry (NWS style)."""
    cap_ns = next((ns for ns in (CAP12, CAP11) if entry.find(f"{{{ns}}}status") is not None), None)
    if cap_ns is None:
        return None

    def a(n: str) -> str:
        return f"{{{ATOM}}}{n}"

    sent = parse_time(entry.findtext(a("published")) or entry.findtext(a("updated")))
    if sent is None:
        return None
    geocodes = []
    for gc in entry.findall(f"{{{cap_ns}}}geocode"):
        name = _text(gc, "valueName", cap_ns) or ""
        values = (_text(gc, "value", cap_ns) or "").split()
        geocodes += [(name, v) for v in values]
    polygon = _text(entry, "polygon", cap_ns)
    area_desc = _text(entry, "areaDesc", cap_ns)
    info = CapInfo(
        language="en-US",
        categories=[c for c in _texts(entry, "category", cap_ns) if c] or ["Other"],
        event=_text(entry, "event", cap_ns) or title.split(" issued ")[0] or "Alert",
        urgency=_text(entry, "urgency", cap_ns) or "Unknown",
        severity=_text(entry, "severity", cap_ns) or "Unknown",
        certainty=_text(entry, "certainty", cap_ns) or "Unknown",
        effective=parse_time(_text(entry, "effective", cap_ns)),
        expires=parse_time(_text(entry, "expires", cap_ns)),
        headline=title or None,
        description=" ".join((entry.findtext(a("summary")) or "").split()) or None,
        web=link,
        parameters=[p for p in _pairs(entry, "parameter", cap_ns) if p[1]],
        areas=[CapArea(area_desc or "", polygons=[polygon] if polygon else [], geocodes=geocodes)] if area_desc else [],
    )
    author = (entry.findtext(f"{a('author')}/{a('name')}") or "").strip() or "unknown"
    return CapMessage(
        identifier=entry_id,
        sender=author,
        sent=sent,
        status=_text(entry, "status", cap_ns) or "Actual",
        msg_type=_text(entry, "msgType", cap_ns) or "Alert",
        scope="Public",
        infos=[info],
        version=VERSIONS[cap_ns],
        warnings=["dibangun dari entri indeks feed / rebuilt from a feed index entry, not a full CAP message"],
    )


def _text(parent: Element, name: str, ns: str) -> str | None:
    child = parent.find(f"{{{ns}}}{name}")
    if child is None or child.text is None:
        return None
    return child.text.strip()


def _texts(parent: Element, name: str, ns: str) -> list[str]:
    return [(c.text or "").strip() for c in parent.findall(f"{{{ns}}}{name}")]


def _pairs(parent: Element, name: str, ns: str) -> list[tuple[str, str]]:
    return [
        ((_text(c, "valueName", ns) or ""), (_text(c, "value", ns) or "")) for c in parent.findall(f"{{{ns}}}{name}")
    ]


def parse_time(value: str | None) -> datetime | None:
    """A CAP dateTime as an aware datetime ("-00:00" means UTC)."""
    if value is None or value == "":
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _float(value: str | None) -> float | None:
    return float(value) if value not in (None, "") else None


def message_from_element(root: Element) -> CapMessage:
    """The CAP message in an `<alert>` element that already passed the schema."""
    ns = namespace_of(root)
    infos = []
    for info_el in root.findall(f"{{{ns}}}info"):
        areas = [
            CapArea(
                area_desc=_text(a, "areaDesc", ns) or "",
                polygons=_texts(a, "polygon", ns),
                circles=_texts(a, "circle", ns),
                geocodes=_pairs(a, "geocode", ns),
                altitude=_float(_text(a, "altitude", ns)),
                ceiling=_float(_text(a, "ceiling", ns)),
            )
            for a in info_el.findall(f"{{{ns}}}area")
        ]
        resources = [
            CapResource(
                resource_desc=_text(r, "resourceDesc", ns) or "",
                mime_type=_text(r, "mimeType", ns),
                size=int(s) if (s := _text(r, "size", ns)) else None,
                uri=_text(r, "uri", ns),
                deref_uri=_text(r, "derefUri", ns),
                digest=_text(r, "digest", ns),
            )
            for r in info_el.findall(f"{{{ns}}}resource")
        ]
        infos.append(
            CapInfo(
                language=_text(info_el, "language", ns) or "en-US",
                categories=_texts(info_el, "category", ns),
                event=_text(info_el, "event", ns) or "",
                response_types=_texts(info_el, "responseType", ns),
                urgency=_text(info_el, "urgency", ns) or "",
                severity=_text(info_el, "severity", ns) or "",
                certainty=_text(info_el, "certainty", ns) or "",
                audience=_text(info_el, "audience", ns),
                event_codes=_pairs(info_el, "eventCode", ns),
                effective=parse_time(_text(info_el, "effective", ns)),
                onset=parse_time(_text(info_el, "onset", ns)),
                expires=parse_time(_text(info_el, "expires", ns)),
                sender_name=_text(info_el, "senderName", ns),
                headline=_text(info_el, "headline", ns),
                description=_text(info_el, "description", ns),
                instruction=_text(info_el, "instruction", ns),
                web=_text(info_el, "web", ns),
                contact=_text(info_el, "contact", ns),
                parameters=_pairs(info_el, "parameter", ns),
                resources=resources,
                areas=areas,
            )
        )
    sent = parse_time(_text(root, "sent", ns))
    assert sent is not None  # the schema requires it
    return CapMessage(
        identifier=_text(root, "identifier", ns) or "",
        sender=_text(root, "sender", ns) or "",
        sent=sent,
        status=_text(root, "status", ns) or "",
        msg_type=_text(root, "msgType", ns) or "",
        scope=_text(root, "scope", ns) or "",
        source=_text(root, "source", ns),
        restriction=_text(root, "restriction", ns),
        addresses=_text(root, "addresses", ns),
        codes=_texts(root, "code", ns),
        note=_text(root, "note", ns),
        references=_text(root, "references", ns),
        incidents=_text(root, "incidents", ns),
        infos=infos,
        version=VERSIONS[ns],
    )


# ---------------------------------------------------------------- export


def format_time(value: datetime) -> str:
    """A CAP dateTime: seconds precision with an explicit offset, never 'Z'."""
    if value.tzinfo is None:
        raise ValueError("CAP times must be timezone-aware")
    text = value.replace(microsecond=0).isoformat()
    return text if _CAP_TIME.match(text) else value.astimezone(UTC).replace(microsecond=0).isoformat()


def to_xml(msg: CapMessage) -> bytes:
    """The message as a CAP 1.2 document (not yet validated: see `validation.export`)."""
    ET.register_namespace("", CAP12)

    def q(name: str) -> str:
        return f"{{{CAP12}}}{name}"

    def add(parent: Element, name: str, value: str | None) -> None:
        if value is not None and value != "":
            ET.SubElement(parent, q(name)).text = value

    def add_pairs(parent: Element, name: str, pairs: list[tuple[str, str]]) -> None:
        for key, value in pairs:
            node = ET.SubElement(parent, q(name))
            ET.SubElement(node, q("valueName")).text = key
            ET.SubElement(node, q("value")).text = value

    root = ET.Element(q("alert"))
    add(root, "identifier", msg.identifier)
    add(root, "sender", msg.sender)
    add(root, "sent", format_time(msg.sent))
    add(root, "status", msg.status)
    add(root, "msgType", msg.msg_type)
    add(root, "source", msg.source)
    add(root, "scope", msg.scope)
    add(root, "restriction", msg.restriction)
    add(root, "addresses", msg.addresses)
    for code in msg.codes:
        add(root, "code", code)
    add(root, "note", msg.note)
    add(root, "references", msg.references)
    add(root, "incidents", msg.incidents)
    for info in msg.infos:
        el = ET.SubElement(root, q("info"))
        add(el, "language", info.language)
        for category in info.categories:
            add(el, "category", category)
        add(el, "event", info.event)
        for rt in info.response_types:
            add(el, "responseType", rt)
        add(el, "urgency", info.urgency)
        add(el, "severity", info.severity)
        add(el, "certainty", info.certainty)
        add(el, "audience", info.audience)
        add_pairs(el, "eventCode", info.event_codes)
        for name in ("effective", "onset", "expires"):
            stamp = getattr(info, name)
            add(el, name, format_time(stamp) if stamp else None)
        add(el, "senderName", info.sender_name)
        add(el, "headline", info.headline)
        add(el, "description", info.description)
        add(el, "instruction", info.instruction)
        add(el, "web", info.web)
        add(el, "contact", info.contact)
        add_pairs(el, "parameter", info.parameters)
        for res in info.resources:
            r = ET.SubElement(el, q("resource"))
            add(r, "resourceDesc", res.resource_desc)
            add(r, "mimeType", res.mime_type or "application/octet-stream")
            add(r, "size", str(res.size) if res.size is not None else None)
            add(r, "uri", res.uri)
            add(r, "derefUri", res.deref_uri)
            add(r, "digest", res.digest)
        for area in info.areas:
            a = ET.SubElement(el, q("area"))
            add(a, "areaDesc", area.area_desc)
            for poly in area.polygons:
                add(a, "polygon", poly)
            for circle in area.circles:
                add(a, "circle", circle)
            add_pairs(a, "geocode", area.geocodes)
            add(a, "altitude", _num(area.altitude))
            add(a, "ceiling", _num(area.ceiling))
    document = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    assert isinstance(document, bytes)  # any encoding but "unicode" gives bytes
    return document


def format_number(value: float) -> str:
    """A number as CAP writes it: no trailing .0 on whole numbers."""
    return str(int(value)) if float(value).is_integer() else str(value)


def _num(value: float | None) -> str | None:
    return None if value is None else format_number(value)

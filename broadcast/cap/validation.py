"""CAP validation: the official OASIS schema, the rules it cannot express, and the checked ways in and out.

`parse_cap` and `export` are the only ways a CAP document enters or leaves the service: both run the schema
(`xmlschema`) and the semantic rules (references on Updates, closed polygons, times), so nothing half-valid is
stored or published. `validate_document` and `messages_in` apply the same checks to feeds (Atom/RSS) that
embed, index or link CAP messages.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from xml.etree.ElementTree import Element

import xmlschema

from broadcast.cap.codec import (
    CAP10,
    CAP11,
    CAP12,
    XMLDSIG,
    CapError,
    CapMessage,
    local_name,
    message_from_element,
    namespace_of,
    parse_document,
    read_feed,
    to_xml,
)

SCHEMA_DIR = Path(__file__).parent / "schema"
SCHEMA_FILES = {CAP12: "CAP-v1.2.xsd", CAP11: "CAP-v1.1.xsd"}
_POINT = re.compile(r"^-?\d+(\.\d+)?,-?\d+(\.\d+)?$")
Fetch = Callable[[str], bytes]


@lru_cache(maxsize=2)
def _schema(namespace: str) -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(SCHEMA_DIR / SCHEMA_FILES[namespace]))


def schema_errors(root: Element) -> list[str]:
    """Reasons the element fails the official schema of its CAP version (empty when valid)."""
    ns = namespace_of(root)
    if local_name(root) != "alert":
        return [f"elemen akar harus <alert>, bukan <{local_name(root)}> / root element must be <alert>"]
    if ns not in SCHEMA_FILES:
        known = ", ".join(SCHEMA_FILES)
        return [f"namespace CAP tidak didukung / unsupported CAP namespace {ns or '(none)'!r}; expected {known}"]
    reasons = []
    for err in _schema(ns).iter_errors(root):
        where = re.sub(r"\{[^}]*\}", "", err.path or "")
        reasons.append(f"{where}: {err.reason}" if where else str(err.reason))
        if len(reasons) >= 10:
            break
    return reasons


def check_semantics(msg: CapMessage, root: Element | None = None) -> tuple[list[str], list[str]]:
    """(errors, warnings) for the rules of the CAP standard that the XML schema does not enforce."""
    errors: list[str] = []
    warnings: list[str] = []
    if root is not None:
        ns = namespace_of(root)
        for name in ("identifier", "sender", "references"):
            el = root.find(f"{{{ns}}}{name}")
            if el is not None and not (el.text or "").strip():
                errors.append(f"<{name}> kosong / <{name}> is empty")
    if msg.msg_type in ("Update", "Cancel", "Ack", "Error"):
        if not msg.references:
            errors.append(f"msgType {msg.msg_type} memerlukan <references> / {msg.msg_type} needs <references>")
        else:
            for ref in msg.references.split():
                if ref.count(",") < 2:
                    errors.append(f"referensi '{ref}' harus 'sender,identifier,sent' / malformed reference")
    if msg.scope == "Restricted" and not msg.restriction:
        errors.append("scope Restricted memerlukan <restriction> / Restricted scope needs <restriction>")
    if msg.scope == "Private" and not msg.addresses:
        errors.append("scope Private memerlukan <addresses> / Private scope needs <addresses>")
    if not msg.infos:
        warnings.append("tidak ada blok <info> / no <info> block: nothing to broadcast")
    for n, info in enumerate(msg.infos, start=1):
        start = info.effective or msg.sent
        if info.expires is not None and info.expires <= start:
            errors.append(f"info {n}: expires tidak setelah sent/effective / expires is not after sent")
        if info.onset is not None and info.expires is not None and info.expires <= info.onset:
            warnings.append(f"info {n}: expires sebelum onset / expires is before onset")
        for area in info.areas:
            for poly in area.polygons:
                points = poly.split()
                if len(points) < 4 or not all(_POINT.match(p) for p in points):
                    warnings.append(f"info {n}: poligon < 4 titik / polygon with fewer than 4 points ignored")
                elif points[0] != points[-1]:
                    warnings.append(f"info {n}: poligon tidak tertutup / polygon ring is not closed")
    return errors, warnings


def parse_cap(data: bytes) -> CapMessage:
    """A valid CAP 1.2 or 1.1 message.

    Raises: CapError with every reason found.
    """
    root = parse_document(data)
    return message_from_root(root)


def message_from_root(root: Element) -> CapMessage:
    """Validate an `<alert>` element (schema, then semantics) and read it.

    Raises: CapError.
    """
    if namespace_of(root) == CAP10:
        raise CapError(["CAP 1.0 tidak didukung / CAP 1.0 is not supported; use 1.1 or 1.2"])
    # A digital signature is not CAP content; CAP 1.1's schema has no slot for it at all.
    signatures = [child for child in root if namespace_of(child) == XMLDSIG]
    for sig in signatures:
        root.remove(sig)
    reasons = schema_errors(root)
    if reasons:
        raise CapError(reasons)
    msg = message_from_element(root)
    errors, warnings = check_semantics(msg, root)
    if errors:
        raise CapError(errors)
    if signatures:
        warnings.append("tanda tangan digital ada, tidak diverifikasi / digital signature present, not verified")
    msg.warnings = warnings
    return msg


def export(msg: CapMessage) -> bytes:
    """The message as CAP 1.2 XML that passed the official schema and the semantic rules.

    Raises: CapError (never returns invalid CAP).
    """
    data = to_xml(msg)
    message_from_root(parse_document(data))
    return data


# ---------------------------------------------------------------- documents and feeds


@dataclass
class ItemReport:
    item: str
    valid: bool
    version: str | None
    kind: str  # cap, feed-embedded, feed-index, feed-link
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class ValidationReport:
    valid: bool
    items: list[ItemReport]


@dataclass
class Skipped:
    item: str
    reason: str


def _check(root: Element, label: str, kind: str) -> ItemReport:
    try:
        msg = message_from_root(root)
    except CapError as exc:
        return ItemReport(label, False, None, kind, exc.reasons)
    return ItemReport(label, True, msg.version, kind, [], msg.warnings)


def validate_document(data: bytes, *, name: str = "document") -> ValidationReport:
    """Whether a document is valid CAP 1.1/1.2, or a feed whose CAP entries are; one reason per failure."""
    try:
        root = parse_document(data)
    except CapError as exc:
        return ValidationReport(False, [ItemReport(name, False, None, "cap", exc.reasons)])
    if local_name(root) == "alert":
        report = _check(root, name, "cap")
        return ValidationReport(report.valid, [report])
    try:
        items = read_feed(root)
    except CapError as exc:
        return ValidationReport(False, [ItemReport(name, False, None, "cap", exc.reasons)])
    reports = []
    for n, item in enumerate(items, start=1):
        label = f"{name}#{n} {item.entry_id or item.title}".strip()
        if item.embedded is not None:
            reports.append(_check(item.embedded, label, "feed-embedded"))
        elif item.index is not None:
            reports.append(ItemReport(label, True, item.index.version, "feed-index", [], item.index.warnings))
        else:
            reports.append(
                ItemReport(
                    label,
                    True,
                    None,
                    "feed-link",
                    [],
                    [f"CAP tertaut tidak diperiksa / linked CAP not checked: {item.link}"],
                )
            )
    if not reports:
        return ValidationReport(False, [ItemReport(name, False, None, "feed", ["feed tanpa entri / empty feed"])])
    return ValidationReport(all(r.valid for r in reports), reports)


def messages_in(
    data: bytes, *, name: str, fetch: Fetch | None
) -> tuple[list[tuple[str, CapMessage, bytes | None]], list[Skipped]]:
    """Every CAP message a document carries (with its own bytes when it is a whole document, for signature
    checks), and the items that carry none (with the reason)."""
    try:
        root = parse_document(data)
        if local_name(root) == "alert":
            return [(name, message_from_root(root), data)], []
        items = read_feed(root)
    except CapError as exc:
        return [], [Skipped(name, "; ".join(exc.reasons[:3]))]
    found: list[tuple[str, CapMessage, bytes | None]] = []
    skipped: list[Skipped] = []
    for n, item in enumerate(items, start=1):
        label = f"{name}#{n}"
        try:
            if item.embedded is not None:
                found.append((label, message_from_root(item.embedded), None))
            elif item.index is not None:
                found.append((label, item.index, None))
            elif item.link and fetch is not None:
                fetched = fetch(item.link)
                found.append((label, parse_cap(fetched), fetched))
            else:
                skipped.append(Skipped(label, f"CAP tertaut tidak diambil / linked CAP not fetched: {item.link}"))
        except CapError as exc:
            skipped.append(Skipped(label, "; ".join(exc.reasons[:3])))
        except OSError as exc:
            skipped.append(Skipped(label, f"gagal mengambil / could not fetch {item.link}: {exc}"))
    if not items:
        skipped.append(Skipped(name, "feed tanpa entri / empty feed"))
    return found, skipped

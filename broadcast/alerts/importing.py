"""Validate and import CAP documents: single messages, or Atom/RSS feeds that embed, index or link them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from broadcast.alerts import cap, service
from broadcast.authority import Actor
from broadcast.errors import BroadcastError, Forbidden

Fetch = Callable[[str], bytes]


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


@dataclass
class ImportResult:
    imported: list[int] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _check(root: object, label: str, kind: str) -> ItemReport:
    try:
        msg = cap.message_from_root(root)  # type: ignore[arg-type]
    except cap.CapError as exc:
        return ItemReport(label, False, None, kind, exc.reasons)
    return ItemReport(label, True, msg.version, kind, [], msg.warnings)


def validate_document(data: bytes, *, name: str = "document") -> ValidationReport:
    """Whether a document is valid CAP 1.1/1.2, or a feed whose CAP entries are; one reason per failure."""
    try:
        root = cap.parse_document(data)
    except cap.CapError as exc:
        return ValidationReport(False, [ItemReport(name, False, None, "cap", exc.reasons)])
    if cap.local_name(root) == "alert":
        report = _check(root, name, "cap")
        return ValidationReport(report.valid, [report])
    try:
        items = cap.read_feed(root)
    except cap.CapError as exc:
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
) -> tuple[list[tuple[str, cap.CapMessage, bytes | None]], list[Skipped]]:
    """Every CAP message a document carries (with its own bytes when it is a whole document, for signature
    checks), and the items that carry none (with the reason)."""
    try:
        root = cap.parse_document(data)
        if cap.local_name(root) == "alert":
            return [(name, cap.message_from_root(root), data)], []
        items = cap.read_feed(root)
    except cap.CapError as exc:
        return [], [Skipped(name, "; ".join(exc.reasons[:3]))]
    found: list[tuple[str, cap.CapMessage, bytes | None]] = []
    skipped: list[Skipped] = []
    for n, item in enumerate(items, start=1):
        label = f"{name}#{n}"
        try:
            if item.embedded is not None:
                found.append((label, cap.message_from_root(item.embedded), None))
            elif item.index is not None:
                found.append((label, item.index, None))
            elif item.link and fetch is not None:
                fetched = fetch(item.link)
                found.append((label, cap.parse_cap(fetched), fetched))
            else:
                skipped.append(Skipped(label, f"CAP tertaut tidak diambil / linked CAP not fetched: {item.link}"))
        except cap.CapError as exc:
            skipped.append(Skipped(label, "; ".join(exc.reasons[:3])))
        except OSError as exc:
            skipped.append(Skipped(label, f"gagal mengambil / could not fetch {item.link}: {exc}"))
    if not items:
        skipped.append(Skipped(name, "feed tanpa entri / empty feed"))
    return found, skipped


def _signed_message(raw: bytes | None, cert: bytes, *, key: str) -> cap.CapMessage | str:
    """The message exactly as the pinned sender signed it (built from signxml's verified bytes, never from the
    document around the signature), or the reason it is refused."""
    from broadcast.trust.senders import SenderRefused, sender_key
    from broadcast.trust.signing import SignatureError, check_trusted

    if raw is None:
        return "pengirim mewajibkan tanda tangan; entri tanpa dokumen sendiri / sender requires a signed document"
    try:
        verified = check_trusted(raw, cert_pem=cert)
        msg = cap.parse_cap(verified.signed_data)
        if sender_key(msg.sender) != key:
            return "pengirim yang ditandatangani berbeda / the signed sender differs"
    except SignatureError as exc:
        return f"tanda tangan tidak sah / signature not valid: {exc}"
    except (cap.CapError, SenderRefused) as exc:
        return f"isi yang ditandatangani tidak sah / signed content not valid: {exc}"
    return msg


def import_document(
    session: Session,
    data: bytes,
    *,
    author: Actor,
    origin: str,
    fetch: Fetch | None,
    name: str = "document",
    channels: Sequence[str] = ("web",),
    trusted_certs: Mapping[str, bytes] | None = None,
    sender: str | None = None,
) -> ImportResult:
    """Each valid message in the document becomes a draft alert; the rest are reported, never half-stored.

    Senders are compared by `sender_key` (a sender with invisible or look-alike characters is skipped). A message
    from a sender in `trusted_certs` (keyed by `sender_key`) is imported only when it is a whole document passing
    `verify_pinned` against that sender's certificate, and the draft is built from what was signed (a feed entry
    without its own document is skipped); only such a message keeps its `sender`, any other becomes ours (`sender`).

    Raises: RoleNotAllowed, OutsideJurisdiction: the whole document is refused (nothing stored) when any message
    in it reaches outside the importer's jurisdiction or follows up an alert the importer does not cover.
    """
    messages, skipped = messages_in(data, name=name, fetch=fetch)
    result = ImportResult(skipped=skipped)
    from broadcast.trust.senders import SenderRefused, sender_key

    pinned = {sender_key(sender): cert for sender, cert in (trusted_certs or {}).items()}
    for label, msg, raw in messages:
        try:
            key = sender_key(msg.sender)
        except SenderRefused as exc:
            result.skipped.append(Skipped(label, str(exc)))
            continue
        cert = pinned.get(key)
        if cert is not None:
            signed = _signed_message(raw, cert, key=key)
            if isinstance(signed, str):
                result.skipped.append(Skipped(label, signed))
                continue
            msg = signed
        try:
            alert = service.import_message(
                session,
                msg=msg,
                author=author,
                origin=origin,
                channels=channels,
                sender=sender,
                sender_verified=cert is not None,
            )
        except Forbidden:
            raise
        except BroadcastError as exc:
            result.skipped.append(Skipped(label, str(exc)))
            continue
        result.imported.append(alert.id)
        result.warnings += [f"{label}: {w}" for w in msg.warnings]
    return result

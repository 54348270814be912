"""CAP documents and feeds (Atom/RSS that embed, index or link CAP) imported as draft alerts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from broadcast.alerts import capmap, service
from broadcast.alerts.models import Alert
from broadcast.authority import Actor
from broadcast.cap import validation
from broadcast.cap.codec import CapError, CapMessage
from broadcast.cap.signing import SignatureError, check_trusted
from broadcast.cap.validation import Fetch, Skipped
from broadcast.errors import BroadcastError, Forbidden
from broadcast.trust.senders import SenderRefused, sender_key


@dataclass
class ImportResult:
    imported: list[int] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _signed_message(raw: bytes | None, cert: bytes, *, key: str) -> CapMessage | str:
    """The message exactly as the pinned sender signed it (built from signxml's verified bytes, never from the
    document around the signature), or the reason it is refused."""
    if raw is None:
        return "pengirim mewajibkan tanda tangan; entri tanpa dokumen sendiri / sender requires a signed document"
    try:
        verified = check_trusted(raw, cert_pem=cert)
        msg = validation.parse_cap(verified.signed_data)
        if sender_key(msg.sender) != key:
            return "pengirim yang ditandatangani berbeda / the signed sender differs"
    except SignatureError as exc:
        return f"tanda tangan tidak sah / signature not valid: {exc}"
    except (CapError, SenderRefused) as exc:
        return f"isi yang ditandatangani tidak sah / signed content not valid: {exc}"
    return msg


def import_message(
    session: Session,
    *,
    msg: CapMessage,
    author: Actor,
    origin: str,
    channels: Sequence[str] = ("web",),
    sender: str | None = None,
    sender_verified: bool = False,
) -> Alert:
    """A draft alert holding a CAP message as it came (identifier and times kept), through
    `alerts.service.create_imported`. Its `sender` is kept only when a trusted signature vouched for it
    (`sender_verified`); otherwise the alert is ours (`sender`, the deployment's) and the claimed sender is kept in
    the audit trail.

    Raises: AlreadyImported, CapError (no info block), RoleNotAllowed, OutsideJurisdiction.
    """
    columns, infos, areas = capmap.message_to_parts(msg)
    claimed_sender = columns["sender"]
    if not sender_verified and sender:
        columns["sender"] = sender
    extra = {
        "claimed_sender": claimed_sender,
        "sender_verified": sender_verified,
        "cap_version": msg.version,
        "warnings": msg.warnings,
    }
    draft = service.ImportedDraft(columns, infos, areas, origin, msg.identifier, channels, extra)
    return service.create_imported(session, draft=draft, author=author)


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
    `check_trusted` against that sender's certificate, and the draft is built from what was signed (a feed entry
    without its own document is skipped); only such a message keeps its `sender`, any other becomes ours (`sender`).

    Raises: RoleNotAllowed, OutsideJurisdiction: the whole document is refused (nothing stored) when any message
    in it reaches outside the importer's jurisdiction or follows up an alert the importer does not cover.
    """
    messages, skipped = validation.messages_in(data, name=name, fetch=fetch)
    result = ImportResult(skipped=skipped)
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
            alert = import_message(
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

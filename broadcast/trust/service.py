"""Hoax intake, clarifications and replies to citizens (closing the loop), opt-outs respected throughout."""

from __future__ import annotations

import logging
import re
import secrets
import unicodedata
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import phonenumbers
from rapidfuzz import fuzz
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from broadcast import events
from broadcast.alerts.models import Alert
from broadcast.audit import service as audit
from broadcast.authority import Action as Can
from broadcast.authority import Actor, Target, require
from broadcast.db import utcnow
from broadcast.dispatch.ratelimit import Bucket, RateLimiter
from broadcast.errors import Invalid, NotFound
from broadcast.reports.models import Report
from broadcast.subscribers.models import Subscriber
from broadcast.trust import codes
from broadcast.trust.models import HoaxClarification, HoaxReport, ReplyContact, TrustReply
from broadcast.trust.verify import normalise_text, state_of
from channels.base import Channel, OutboundMessage, Outcome, send_one_safely
from channels.sms import mask_number
from templates import message_env

log = logging.getLogger(__name__)

MAX_HOAX_CHARS = 2000
# Two forwarded texts at least this similar (rapidfuzz token_set_ratio) are the same rumour.
CLUSTER_SCORE = 80.0
REPLY_KINDS = ("verified", "actioned", "clarified")
# Forwards per sender (author hash) and hour; more are not stored (a flood of HOAKS is not more evidence).
HOAX_PER_AUTHOR_PER_HOUR = 10


class HoaxNotFound(NotFound):
    code = "hoax-not-found"


class HoaxLimited(Invalid):
    """One sender forwarded more suspected fakes in the last hour than HOAX_PER_AUTHOR_PER_HOUR."""

    code = "hoax-limited"


class InvalidHoax(Invalid):
    code = "invalid-hoax"


def _language(value: str | None) -> str:
    return "en" if (value or "").lower().startswith("en") else "id"


def remember_contact(session: Session, *, author: str, phone: str, language: str) -> None:
    """Keep the number behind `author` (a report's author hash) so the ops centre can answer this sender."""
    row = session.get(ReplyContact, author)
    if row is None:
        session.add(ReplyContact(author_hash=author, phone=phone, language=_language(language)))
    else:
        row.phone, row.language = phone, _language(language)
    session.flush()


def forget_contact(session: Session, *, author: str) -> None:
    """Drop the number behind `author` (they texted BERHENTI/STOP); pending replies to them are skipped."""
    row = session.get(ReplyContact, author)
    if row is not None:
        session.delete(row)
    for reply in session.scalars(select(TrustReply).where(TrustReply.address == author, TrustReply.state == "pending")):
        reply.state, reply.error = "skipped", "sender stopped"
    session.flush()


def store_hoax(
    session: Session,
    *,
    source: str,
    text: str,
    language: str = "id",
    external_id: str | None = None,
    author: str | None = None,
) -> HoaxReport:
    """Store a forwarded suspected fake once per provider message (a retried webhook returns the first row).

    Raises: InvalidHoax (empty or longer than MAX_HOAX_CHARS), HoaxLimited (the author's hourly limit).
    """
    cleaned = unicodedata.normalize("NFKC", text or "").strip()
    if not cleaned:
        raise InvalidHoax("Isi pesan kosong / the message is empty")
    if len(cleaned) > MAX_HOAX_CHARS:
        raise InvalidHoax(f"Pesan terlalu panjang (maks. {MAX_HOAX_CHARS}) / too long (max {MAX_HOAX_CHARS})")
    external_id = external_id or f"{source}-{secrets.token_hex(8)}"
    existing = session.scalar(
        select(HoaxReport).where(HoaxReport.source == source, HoaxReport.external_id == external_id)
    )
    if existing is not None:
        return existing
    if author is not None:
        recent = session.scalar(
            select(func.count())
            .select_from(HoaxReport)
            .where(HoaxReport.author_hash == author, HoaxReport.received_at >= utcnow() - timedelta(hours=1))
        )
        if (recent or 0) >= HOAX_PER_AUTHOR_PER_HOUR:
            raise HoaxLimited(
                f"Batas {HOAX_PER_AUTHOR_PER_HOUR} laporan hoaks per jam tercapai / limit of "
                f"{HOAX_PER_AUTHOR_PER_HOUR} hoax reports an hour reached"
            )
    row = HoaxReport(
        source=source,
        external_id=external_id,
        text=cleaned,
        language=_language(language),
        author_hash=author,
        claimed_code=codes.find_in_text(cleaned),
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        found = session.scalar(
            select(HoaxReport).where(HoaxReport.source == source, HoaxReport.external_id == external_id)
        )
        if found is None:
            raise
        return found
    return row


@dataclass
class HoaxCluster:
    """Forwarded texts that are the same rumour: the earliest text stands for them all."""

    members: list[HoaxReport] = field(default_factory=list)

    @property
    def representative(self) -> HoaxReport:
        return self.members[0]

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def forwarders(self) -> int:
        return len({m.author_hash or f"anon:{m.id}" for m in self.members})

    @property
    def last_at(self) -> datetime:
        return max(m.received_at for m in self.members)


def _comparable(text: str) -> str:
    # Forwards differ in "Fwd:", emoji, case and punctuation; the rumour is in the words.
    return re.sub(r"[^\w\s]", " ", normalise_text(text).casefold())


# MinHash over each text's word set, banded for LSH: texts that share a band bucket are candidates. With 24 bands
# of 2 rows, word sets with Jaccard similarity 0.3 meet with probability 0.9, 0.5 with 0.999.
_MINHASH_BANDS = 24
_MINHASH_ROWS = 2
_MERSENNE = (1 << 61) - 1
_rng = np.random.default_rng(20261207)
_HASH_A = _rng.integers(1, _MERSENNE, size=_MINHASH_BANDS * _MINHASH_ROWS, dtype=np.uint64)
_HASH_B = _rng.integers(0, _MERSENNE, size=_MINHASH_BANDS * _MINHASH_ROWS, dtype=np.uint64)
# A bucket larger than this is compared to its first member only (one rumour forwarded a thousand times).
_BUCKET_ALL_PAIRS = 32


def _minhash(words: frozenset[str]) -> np.ndarray:
    hashed = np.fromiter((zlib.crc32(w.encode()) for w in words), dtype=np.uint64, count=len(words))
    if not hashed.size:
        return np.zeros(_MINHASH_BANDS * _MINHASH_ROWS, dtype=np.uint64)
    # a*x + b in uint64 with wrap-around: one fixed pseudo-random mapping per (a, b); the minimum over the words is
    # that row of the signature.
    mixed = _HASH_A[:, None] * hashed[None, :] + _HASH_B[:, None]
    signature: np.ndarray = mixed.min(axis=1)
    return signature


def group_texts(texts: Sequence[str], *, threshold: float = CLUSTER_SCORE) -> list[int]:
    """For each text, the index of its group (single link on token_set_ratio >= threshold over `_comparable`).

    Linear in the number of texts, not quadratic: texts with the same word set are one group at once, and only
    candidates found through a MinHash LSH index of the word sets (at most _BUCKET_ALL_PAIRS per bucket compared
    pairwise, larger buckets against their first member) are scored.
    """
    by_words: dict[frozenset[str], int] = {}
    unique_text: list[str] = []
    member_of: list[int] = []
    for raw in texts:
        text = _comparable(raw)
        words = frozenset(text.split())
        index = by_words.get(words)
        if index is None:
            index = by_words[words] = len(unique_text)
            unique_text.append(text)
        member_of.append(index)
    parent = list(range(len(unique_text)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    buckets: dict[tuple[int, bytes], list[int]] = {}
    for index, words in enumerate(by_words):
        signature = _minhash(words)
        for band in range(_MINHASH_BANDS):
            key = signature[band * _MINHASH_ROWS : (band + 1) * _MINHASH_ROWS].tobytes()
            buckets.setdefault((band, key), []).append(index)
    scored: set[tuple[int, int]] = set()
    for members in buckets.values():
        if len(members) < 2:
            continue
        if len(members) <= _BUCKET_ALL_PAIRS:
            pairs = ((a, b) for n, a in enumerate(members) for b in members[n + 1 :])
        else:
            pairs = ((members[0], b) for b in members[1:])
        for a, b in pairs:
            if (a, b) in scored or root(a) == root(b):
                continue
            scored.add((a, b))
            if fuzz.token_set_ratio(unique_text[a], unique_text[b], score_cutoff=threshold) >= threshold:
                parent[root(b)] = root(a)
    return [root(index) for index in member_of]


def cluster_hoaxes(session: Session, *, open_only: bool = True, threshold: float = CLUSTER_SCORE) -> list[HoaxCluster]:
    """Forwarded texts grouped by similarity (`group_texts`), largest group first."""
    stmt = select(HoaxReport).order_by(HoaxReport.received_at, HoaxReport.id)
    if open_only:
        stmt = stmt.where(HoaxReport.clarification_id.is_(None))
    rows = list(session.scalars(stmt))
    if not rows:
        return []
    groups: dict[int, HoaxCluster] = {}
    for row, group in zip(rows, group_texts([r.text for r in rows], threshold=threshold), strict=True):
        groups.setdefault(group, HoaxCluster()).members.append(row)
    return sorted(groups.values(), key=lambda c: (-c.size, -c.last_at.timestamp()))


def get_hoax(session: Session, *, hoax_id: int) -> HoaxReport:
    """The forwarded text with this id.

    Raises: HoaxNotFound.
    """
    row = session.get(HoaxReport, hoax_id)
    if row is None:
        raise HoaxNotFound(f"Laporan hoaks {hoax_id} tidak ditemukan / hoax report not found")
    return row


# Digits joined by any separators (up to three non-letters between two digits: spaces, dots, dashes, underscores,
# commas, middle dots, asterisks, ...): 0812_3456_7890 and 0812·3456·7890 are numbers too.
_LONG_DIGITS = re.compile(r"\+?\d(?:(?:[^\w\n]|_){0,3}\d)+")


def redact_numbers(text: str) -> str:
    """`text` with every phone number (and any other long run of digits) replaced by "[nomor disembunyikan]", so a
    forwarded fake shown in public never carries someone's number."""
    out = text
    for match in reversed(list(phonenumbers.PhoneNumberMatcher(text, "ID", leniency=phonenumbers.Leniency.POSSIBLE))):
        out = out[: match.start] + "[nomor disembunyikan]" + out[match.end :]
    return _LONG_DIGITS.sub(
        lambda m: "[nomor disembunyikan]" if sum(c.isdigit() for c in m.group()) >= 9 else m.group(), out
    )


def _slug(title: str) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower())
    return f"{base.strip('-')[:40] or 'klarifikasi'}-{secrets.token_hex(3)}"


class ClarificationNotFound(NotFound):
    code = "clarification-not-found"


def submit_clarification(
    session: Session,
    *,
    hoax_ids: Sequence[int],
    title_id: str,
    body_id: str,
    actor: Actor,
    title_en: str = "",
    body_en: str = "",
    alert_id: int | None = None,
) -> HoaxClarification:
    """Write a "klarifikasi" for these forwarded texts (and every text of their cluster) and send it for approval:
    nothing is public and no SMS is queued until a second person approves it (`approve_clarification`); `alert_id`
    links an issued alert (e.g. the Update that corrects the rumour, made through the normal approval).

    Raises: HoaxNotFound, InvalidHoax, RoleNotAllowed.
    """
    require(actor, Can.CLARIFICATION_SUBMIT, Target())
    if not title_id.strip() or not body_id.strip():
        raise InvalidHoax("Judul dan isi klarifikasi wajib diisi / title and text are required")
    if alert_id is not None:
        linked = session.get(Alert, alert_id)
        if linked is None or state_of(linked) is None:
            raise InvalidHoax(f"Peringatan {alert_id} belum terbit / alert {alert_id} is not issued")
    chosen = [get_hoax(session, hoax_id=i) for i in hoax_ids]
    if not chosen:
        raise InvalidHoax("Pilih minimal satu laporan hoaks / choose at least one hoax report")
    ids = {h.id for h in chosen}
    members = [m for c in cluster_hoaxes(session) if ids & {m.id for m in c.members} for m in c.members]
    members = list({m.id: m for m in [*chosen, *members]}.values())
    taken = [m.id for m in members if m.clarification_id is not None]
    if taken:
        raise InvalidHoax(f"Laporan {taken} sudah punya klarifikasi / already being clarified")
    page = HoaxClarification(
        slug=_slug(title_id),
        title_id=title_id.strip(),
        title_en=title_en.strip(),
        body_id=body_id.strip(),
        body_en=body_en.strip(),
        hoax_text=redact_numbers(chosen[0].text),
        alert_id=alert_id,
        author_id=actor.id,
        state="submitted",
    )
    session.add(page)
    session.flush()
    for m in members:  # held for this clarification while it is reviewed (released if it is rejected)
        m.clarification_id = page.id
    audit.record(
        session,
        actor_id=actor.id,
        action="hoax.clarify.submit",
        subject_type="hoax_clarification",
        subject_id=page.id,
        after={"slug": page.slug, "hoax_ids": sorted(m.id for m in members), "alert_id": alert_id},
    )
    session.flush()
    return page


def get_clarification(session: Session, *, clarification_id: int) -> HoaxClarification:
    """The clarification with this id, in any state.

    Raises: ClarificationNotFound.
    """
    page = session.get(HoaxClarification, clarification_id)
    if page is None:
        raise ClarificationNotFound("Klarifikasi tidak ditemukan / clarification not found")
    return page


def pending_clarifications(session: Session) -> list[HoaxClarification]:
    """Clarifications waiting for a second person, oldest first."""
    stmt = select(HoaxClarification).where(HoaxClarification.state == "submitted").order_by(HoaxClarification.id)
    return list(session.scalars(stmt))


def _decide(session: Session, clarification_id: int, approver: Actor, action: Can) -> HoaxClarification:
    page = get_clarification(session, clarification_id=clarification_id)
    contributors = {page.author_id}
    contributors |= {
        e.actor_id
        for e in audit.entries_for(session, subject_type="hoax_clarification", subject_id=page.id)
        if e.action == "hoax.clarify.submit" and e.actor_id is not None
    }
    require(approver, action, Target(contributors=frozenset(contributors)))
    if page.state != "submitted":
        raise InvalidHoax(f"Klarifikasi sudah '{page.state}' / the clarification is already {page.state}")
    return page


def approve_clarification(
    session: Session, *, clarification_id: int, approver: Actor, public_base_url: str = ""
) -> tuple[HoaxClarification, list[TrustReply]]:
    """Publish a submitted clarification (by a second person: never its author) and queue one SMS reply to each
    forwarder who can still be reached. Returns the page and the queued replies.

    Raises: ClarificationNotFound, InvalidHoax (not waiting for approval), RoleNotAllowed, TwoPersonRule.
    """
    page = _decide(session, clarification_id, approver, Can.CLARIFICATION_APPROVE)
    now = utcnow()
    page.state, page.approver_id, page.decided_at, page.published_at = "published", approver.id, now, now
    members = list(session.scalars(select(HoaxReport).where(HoaxReport.clarification_id == page.id)))
    audit.record(
        session,
        actor_id=approver.id,
        action="hoax.clarify",
        subject_type="hoax_clarification",
        subject_id=page.id,
        after={"slug": page.slug, "hoax_ids": sorted(m.id for m in members), "alert_id": page.alert_id},
    )
    link = f"{public_base_url.rstrip('/')}/klarifikasi/{page.slug}"
    replies = []
    for m in members:
        if m.source != "sms" or m.author_hash is None or not _reachable(session, m.author_hash):
            continue
        title = page.title_en if m.language == "en" and page.title_en else page.title_id
        reply = _queue(
            session,
            subject=f"hoax:{m.id}",
            kind="clarified",
            channel="sms",
            address=m.author_hash,
            language=m.language,
            context={"reference": m.id, "title": title, "link": link},
        )
        if reply is not None:
            replies.append(reply)
    session.flush()
    return page, replies


def reject_clarification(session: Session, *, clarification_id: int, approver: Actor, reason: str) -> HoaxClarification:
    """Send a submitted clarification back (by a second person): nothing is published, its texts are open again.

    Raises: ClarificationNotFound, InvalidHoax, RoleNotAllowed, TwoPersonRule.
    """
    page = _decide(session, clarification_id, approver, Can.CLARIFICATION_REJECT)
    page.state, page.approver_id, page.decided_at, page.rejection_reason = "rejected", approver.id, utcnow(), reason
    for m in session.scalars(select(HoaxReport).where(HoaxReport.clarification_id == page.id)):
        m.clarification_id = None
    audit.record(
        session,
        actor_id=approver.id,
        action="hoax.clarify.reject",
        subject_type="hoax_clarification",
        subject_id=page.id,
        after={"slug": page.slug, "reason": reason},
    )
    session.flush()
    return page


def find_clarification(session: Session, *, slug: str) -> HoaxClarification | None:
    """The published clarification page with this slug, or None (a submitted or rejected one is not public)."""
    return session.scalar(
        select(HoaxClarification).where(HoaxClarification.slug == slug, HoaxClarification.state == "published")
    )


def list_clarifications(session: Session, *, limit: int = 50) -> list[HoaxClarification]:
    """Published clarifications, newest first."""
    stmt = (
        select(HoaxClarification)
        .where(HoaxClarification.state == "published")
        .order_by(HoaxClarification.published_at.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))


def _stopped(session: Session, phone: str) -> bool:
    sub = session.scalar(select(Subscriber).where(Subscriber.phone == phone))
    return sub is not None and not sub.active


def _reachable(session: Session, author: str | None) -> bool:
    """True when we hold a number for this sender and they have not stopped."""
    contact = session.get(ReplyContact, author) if author else None
    return contact is not None and not _stopped(session, contact.phone)


def _render(kind: str, language: str, context: Mapping[str, object]) -> str:
    template = message_env().get_template(f"trust/{kind}.{_language(language)}.j2")
    return " ".join(template.render(**context).split())


def _queue(
    session: Session,
    *,
    subject: str,
    kind: str,
    channel: str,
    address: str,
    language: str,
    context: Mapping[str, object],
) -> TrustReply | None:
    """One reply per subject and kind; None when it was queued before."""
    existing = session.scalar(select(TrustReply).where(TrustReply.subject == subject, TrustReply.kind == kind))
    if existing is not None:
        return None
    text = _render(kind, language, {**context, "stop_hint": channel == "sms"})
    reply = TrustReply(
        subject=subject, kind=kind, channel=channel, address=address, language=_language(language), text=text
    )
    session.add(reply)
    session.flush()
    events.record(session, events.ReplyQueued(reply.id))
    return reply


def notify_reporter(session: Session, report: Report, kind: str) -> TrustReply | None:
    """Queue the reply telling a citizen their report was verified or actioned, on the channel it came from
    (SMS to the sender's number, X as a reply to their post), in the report's language.

    Nothing is queued for a sender who stopped (BERHENTI/STOP or a carrier opt-out), an anonymous report, a
    report that was a command, or the second time the same kind is asked for. Returns the queued reply or None.
    Raises: ValueError for an unknown kind.
    """
    if kind not in ("verified", "actioned"):
        raise ValueError(f"unknown reply kind {kind!r}; known: verified, actioned")
    if report.command is not None:
        return None
    context = {"reference": report.id}
    language = report.language or "id"
    if report.source in SMS_SOURCES:
        if report.author_hash is None:
            return None
        if not _reachable(session, report.author_hash):
            return None
        return _queue(
            session,
            subject=f"report:{report.id}",
            kind=kind,
            channel=report.source,
            address=report.author_hash,
            language=language,
            context=context,
        )
    if report.source == "x":
        tweet = report.raw.get("tweet") if isinstance(report.raw, dict) else None
        post_id = str(tweet.get("id") or report.external_id) if isinstance(tweet, dict) else report.external_id
        return _queue(
            session,
            subject=f"report:{report.id}",
            kind=kind,
            channel="social",
            address=post_id,
            language=language,
            context=context,
        )
    return None


# Channels whose replies go to the sender's number (kept in ReplyContact): Twilio SMS and the SIM gateway, whose
# reports come in with the channel's name as their source.
SMS_SOURCES = ("sms", "smsgateway")
ANSWER = "answer"  # the reply to a citizen's own command, on a channel that cannot answer in the webhook itself


def queue_answer(
    session: Session, *, report: Report, channel: str, phone: str, language: str, text: str
) -> TrustReply | None:
    """Queue the answer to a command that came in as `report` (the SIM gateway answers by sending an SMS, not in
    the webhook's response): once per report. It goes to `phone` even after BERHENTI/STOP (it answers their own
    message, e.g. confirms the stop); the number is kept only until the answer is sent, then masked.
    Returns the queued reply, or None when one was queued before."""
    existing = session.scalar(
        select(TrustReply).where(TrustReply.subject == f"report:{report.id}", TrustReply.kind == ANSWER)
    )
    if existing is not None:
        return None
    reply = TrustReply(
        subject=f"report:{report.id}", kind=ANSWER, channel=channel, address=phone, language=_language(language),
        text=text,
    )  # fmt: skip
    session.add(reply)
    session.flush()
    events.record(session, events.ReplyQueued(reply.id))  # sent by trust.send_replies after the commit
    return reply


def pending_replies(session: Session, *, limit: int = 200) -> list[int]:
    """Ids of replies not yet sent, oldest first."""
    stmt = select(TrustReply.id).where(TrustReply.state == "pending").order_by(TrustReply.id).limit(limit)
    return list(session.scalars(stmt))


def send_reply(
    session: Session, *, reply_id: int, channels: Mapping[str, Channel], limiter: RateLimiter | None = None
) -> TrustReply | None:
    """Send one pending reply through its channel (SMS number resolved only now; stopped senders skipped), within
    the channel's limits when a `limiter` (the fan-out's shared buckets) is given.

    Sends at most once: only a pending row is sent, and it leaves pending in the same transaction. A channel that
    is unavailable, or whose limits have no room now, leaves it pending for the next try. Returns the row, or None
    when it was not pending.
    """
    reply = session.scalar(
        select(TrustReply).where(TrustReply.id == reply_id, TrustReply.state == "pending").with_for_update()
    )
    if reply is None:
        return None
    channel = channels.get(reply.channel)
    if channel is None:
        reply.state, reply.error = "failed", f"channel {reply.channel} not enabled"
        session.flush()
        return reply
    recipient, reply_to = "", None
    if reply.kind == ANSWER:
        recipient = reply.address
    elif reply.channel in SMS_SOURCES:
        contact = session.get(ReplyContact, reply.address)
        if contact is None or _stopped(session, contact.phone):
            reply.state, reply.error = "skipped", "sender stopped or unknown"
            session.flush()
            return reply
        recipient = contact.phone
    else:
        reply_to = reply.address
    message = OutboundMessage(
        recipient=recipient, text=reply.text, reference=f"reply-{reply.id}", language=reply.language, reply_to=reply_to
    )
    if limiter is not None and channel.mode == "live":
        buckets, cost = channel.rate_buckets(message)
        wait = limiter.try_acquire([Bucket(b.key, b.rate, b.burst) for b in buckets], cost) if buckets else 0.0
        if wait:
            reply.error = f"rate limit: waiting for the channel's limit ({wait:.0f} s)"
            session.flush()
            return reply
    result = send_one_safely(channel, message)
    if result.outcome is Outcome.SENT:
        reply.state, reply.provider_id, reply.sent_at = "sent", result.provider_id, utcnow()
    elif result.outcome is Outcome.FAILED:
        reply.state, reply.error = "failed", result.error
    else:
        reply.error = result.error
    if reply.kind == ANSWER and reply.state != "pending":
        reply.address = mask_number(reply.address)  # the number is not kept once the answer is out
    session.flush()
    return reply

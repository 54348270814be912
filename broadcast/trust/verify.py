"""Is this message official? Look an alert up by its verification code, or a pasted text by its exact content.

A pasted text verifies only when it is, after harmless normalisation (Unicode form, typographic quotes, runs of
spaces), exactly a message we issued: one changed number in an evacuation order must not pass. rapidfuzz is used
only to show the closest official message next to an altered copy, never to verify it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from rapidfuzz import fuzz, process
from sqlalchemy import select
from sqlalchemy.orm import Session

from broadcast.alerts import service as alerts
from broadcast.alerts.models import Alert, AlertState
from broadcast.alerts.rules import PUBLIC_STATES
from broadcast.db import utcnow
from broadcast.dispatch.models import Delivery, OutboxMessage
from broadcast.trust import codes
from channels.base import Renderer, status_mark
from channels.registry import RENDERERS
from channels.sms.segments import normalise_gsm7
from channels.social.x_render import XRenderer

# How many recent public alerts a pasted text without a code is compared with.
RECENT_ALERTS = 300
# A pasted text this close to an official one is shown as "altered copy of ..." (still NOT official).
SIMILAR_SCORE = 75.0


@dataclass(frozen=True, slots=True)
class State:
    """The public state of an issued alert, as /cek and CEK show it."""

    key: str  # active, updated, cancelled, expired
    label_id: str
    label_en: str


ACTIVE = State("active", "AKTIF", "ACTIVE")
UPDATED = State("updated", "DIPERBARUI", "UPDATED")
CANCELLED = State("cancelled", "DIBATALKAN", "CANCELLED")
EXPIRED = State("expired", "KEDALUWARSA", "EXPIRED")


@dataclass(frozen=True, slots=True)
class ChannelText:
    channel: str  # sms, social
    language: str
    text: str


@dataclass
class Verification:
    """An official alert found by code or text: what it said on each channel and where it stands now."""

    alert: Alert
    state: State
    texts: list[ChannelText] = field(default_factory=list)
    follow_up: Alert | None = None  # the newest Update/Cancel that replaced it
    mark: str | None = None  # LATIHAN/TEST when not Actual

    @property
    def headline(self) -> str:
        return self.alert.infos[0].headline if self.alert.infos else ""


@dataclass
class TextCheck:
    """The answer for a pasted text: official (verification set) or not, with the closest official message."""

    official: bool
    verification: Verification | None = None
    closest: Verification | None = None
    closest_text: ChannelText | None = None
    score: float = 0.0
    claimed_code: str | None = None


def state_of(alert: Alert, *, now: datetime | None = None) -> State | None:
    """The public state of an alert, or None when it was never issued (drafts are nobody's business)."""
    if alert.state == AlertState.CANCELLED.value:
        return CANCELLED
    if alert.state == AlertState.SUPERSEDED.value:
        return UPDATED
    if alert.state == AlertState.EXPIRED.value:
        return EXPIRED
    if alert.state in (AlertState.PUBLISHED.value, AlertState.APPROVED.value):
        if alert.expires is not None and alert.expires <= (now or utcnow()):
            return EXPIRED
        return ACTIVE
    return None


def normalise_text(text: str) -> str:
    """A message as compared: NFKC, GSM-7 quotes and dashes, single spaces, no surrounding whitespace."""
    text = unicodedata.normalize("NFKC", text or "")
    return " ".join(normalise_gsm7(" ".join(text.split())).split())


def channel_texts(
    session: Session, alert: Alert, *, public_base_url: str, renderers: Mapping[str, Renderer] | None = None
) -> list[ChannelText]:
    """Every text the alert went out as: each SMS language, each X post, plus any text the outbox recorded."""
    data = alerts.to_alert_data(alert, public_base_url=public_base_url)
    built = dict(renderers or {})
    out: list[ChannelText] = []
    for name in alert.channels:
        if name == "web" or name not in RENDERERS:
            continue
        renderer = built.get(name) or RENDERERS[name]()
        if isinstance(renderer, XRenderer):
            for info in data.infos:
                out += [ChannelText(name, info.language, t) for t in renderer.language_posts(data, info)]
        else:
            out += [ChannelText(name, p.language, p.text) for p in renderer.preview(data)]
    stmt = (
        select(OutboxMessage.channel, Delivery.language, OutboxMessage.text)
        .join(Delivery, Delivery.id == OutboxMessage.delivery_id)
        .where(Delivery.alert_id == alert.id)
        .distinct()
    )
    seen = {(t.channel, normalise_text(t.text)) for t in out}
    for channel, language, text in session.execute(stmt):
        if (channel, normalise_text(text)) not in seen:
            seen.add((channel, normalise_text(text)))
            out.append(ChannelText(channel, language, text))
    return out


def _follow_up(session: Session, alert: Alert) -> Alert | None:
    later = [a for a in alerts.list_follow_ups(session, alert_id=alert.id) if state_of(a) is not None]
    return later[-1] if later else None


def _verification(
    session: Session,
    alert: Alert,
    *,
    public_base_url: str,
    renderers: Mapping[str, Renderer] | None,
    with_texts: bool = True,
) -> Verification | None:
    state = state_of(alert)
    if state is None:
        return None
    texts = channel_texts(session, alert, public_base_url=public_base_url, renderers=renderers) if with_texts else []
    return Verification(
        alert=alert,
        state=state,
        texts=texts,
        follow_up=_follow_up(session, alert),
        mark=status_mark(alert.status, "id"),
    )


def find_by_code(
    session: Session,
    *,
    code: str,
    public_base_url: str,
    renderers: Mapping[str, Renderer] | None = None,
    with_texts: bool = True,
) -> Verification | None:
    """The issued alert with this verification code (typed loosely: case, O/0, I/1), or None; `with_texts`
    also renders what it said on each channel."""
    canonical = codes.normalise(code)
    if canonical is None:
        return None
    alert = session.scalar(select(Alert).where(Alert.verify_code == canonical))
    if alert is None:
        return None
    return _verification(session, alert, public_base_url=public_base_url, renderers=renderers, with_texts=with_texts)


def check_text(
    session: Session, *, text: str, public_base_url: str, renderers: Mapping[str, Renderer] | None = None
) -> TextCheck:
    """Whether `text` is exactly an official message; if not, the closest official message (for comparison)."""
    wanted = normalise_text(text)
    claimed = codes.find_in_text(text)
    if claimed is not None:
        found = find_by_code(session, code=claimed, public_base_url=public_base_url, renderers=renderers)
        candidates = [found] if found is not None else []
    else:
        stmt = (
            select(Alert)
            .where(Alert.state.in_([s.value for s in PUBLIC_STATES] + [AlertState.APPROVED.value]))
            .order_by(Alert.id.desc())
            .limit(RECENT_ALERTS)
        )
        candidates = [
            v
            for a in session.scalars(stmt)
            if (v := _verification(session, a, public_base_url=public_base_url, renderers=renderers)) is not None
        ]
    pool = [(v, t) for v in candidates for t in v.texts]
    for v, t in pool:
        if normalise_text(t.text) == wanted:
            return TextCheck(True, verification=v, claimed_code=claimed)
    if not pool or not wanted:
        return TextCheck(False, claimed_code=claimed)
    best = process.extractOne(wanted, [normalise_text(t.text) for _, t in pool], scorer=fuzz.ratio)
    assert best is not None
    _, score, index = best
    if score < SIMILAR_SCORE:
        return TextCheck(False, claimed_code=claimed, score=score)
    v, t = pool[index]
    return TextCheck(False, closest=v, closest_text=t, score=score, claimed_code=claimed)

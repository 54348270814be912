"""Is this message official? Look an alert up by its verification code, or a pasted text by its exact content.

A pasted text verifies only when it is, after harmless normalisation (Unicode form, typographic quotes, runs of
spaces), exactly a message we issued: one changed number in an evacuation order must not pass. rapidfuzz is used
only to show the closest official message next to an altered copy, never to verify it.
"""

from __future__ import annotations

import unicodedata
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from rapidfuzz import fuzz, process
from sqlalchemy import select
from sqlalchemy.orm import Session

from broadcast.alerts import public
from broadcast.alerts import service as alerts
from broadcast.alerts.models import Alert, AlertState
from broadcast.alerts.rules import PUBLIC_STATES
from broadcast.dispatch.models import Delivery, OutboxMessage
from broadcast.trust import codes
from channels.base import Renderer, status_mark
from channels.registry import CHANNELS, build_renderer
from channels.sms.segments import normalise_gsm7
from channels.social.x_render import XRenderer

# How many recent public alerts a pasted text without a code is compared with.
RECENT_ALERTS = 300
# A pasted text this close to an official one is shown as "altered copy of ..." (still NOT official).
SIMILAR_SCORE = 75.0


# The public state of an issued alert, as /cek and CEK show it: the one public truth (broadcast.alerts.public).
State = public.Label
ACTIVE, UPDATED, CANCELLED, EXPIRED = public.ACTIVE, public.UPDATED, public.CANCELLED, public.EXPIRED


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
    follow_up: Alert | None = None  # the newest Update/Cancel that replaced it (the last message of its chain)
    mark: str | None = None  # LATIHAN/TEST when not Actual
    reason: str | None = None  # why it was cancelled, when it was

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
    """The state an alert has on its own (None when it was never issued); for the chain, see
    broadcast.alerts.public.public_state."""
    return public.own_label(alert, now=now)


def normalise_text(text: str) -> str:
    """A message as compared: NFKC, GSM-7 quotes and dashes, single spaces, no surrounding whitespace."""
    text = unicodedata.normalize("NFKC", text or "")
    return " ".join(normalise_gsm7(" ".join(text.split())).split())


def channel_texts(
    session: Session, alert: Alert, *, public_base_url: str, renderers: Mapping[str, Renderer] | None = None
) -> list[ChannelText]:
    """Every text the alert went out as: each SMS language, each X post, plus any text the outbox recorded."""
    rendered = rendered_texts(alert, public_base_url=public_base_url, renderers=renderers)
    return _with_outbox(rendered, _outbox_texts(session, [alert.id]).get(alert.id, []))


# Rendering (X weighting above all) costs milliseconds per alert; a pasted text without a code is compared with
# hundreds of alerts, so each alert's texts are kept per version (id, updated_at) and rendering configuration.
_RENDER_CACHE: OrderedDict[tuple[object, ...], tuple[ChannelText, ...]] = OrderedDict()
_RENDER_CACHE_SIZE = 2 * RECENT_ALERTS


def _hashable(value: object) -> object:
    """A renderer setting as part of a cache key: itself, or its repr when it cannot be hashed (a dict of template
    ids, a list of senders)."""
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


def rendered_texts(
    alert: Alert, *, public_base_url: str, renderers: Mapping[str, Renderer] | None = None
) -> list[ChannelText]:
    """The texts the alert's channels render for it (SMS per language, every X post of the thread)."""
    config = tuple(
        sorted(
            (n, type(r).__name__, tuple(sorted((k, _hashable(v)) for k, v in getattr(r, "__dict__", {}).items())))
            for n, r in (renderers or {}).items()
        )
    )
    # The identifier too: ids and timestamps alone can repeat across databases (one process, two test databases
    # at a frozen clock served each other's texts).
    key = (alert.id, alert.identifier, alert.updated_at, alert.state, public_base_url, config)
    cached = _RENDER_CACHE.get(key)
    if cached is not None:
        _RENDER_CACHE.move_to_end(key)
        return list(cached)
    texts = _render_texts(alert, public_base_url=public_base_url, renderers=renderers)
    _RENDER_CACHE[key] = tuple(texts)
    while len(_RENDER_CACHE) > _RENDER_CACHE_SIZE:
        _RENDER_CACHE.popitem(last=False)
    return texts


def _render_texts(
    alert: Alert, *, public_base_url: str, renderers: Mapping[str, Renderer] | None = None
) -> list[ChannelText]:
    data = alerts.to_alert_data(alert, public_base_url=public_base_url)
    built = dict(renderers or {})
    out: list[ChannelText] = []
    for name in alert.channels:
        if name == "web" or name not in CHANNELS:
            continue
        renderer = built.get(name) or build_renderer(name)
        if isinstance(renderer, XRenderer):
            for info in data.infos:
                out += [ChannelText(name, info.language, t) for t in renderer.language_posts(data, info)]
        else:
            out += [ChannelText(name, p.language, p.text) for p in renderer.preview(data)]
    return out


def _outbox_texts(session: Session, alert_ids: list[int]) -> dict[int, list[ChannelText]]:
    """Texts the outbox recorded for these alerts (exactly what was handed to each channel), by alert."""
    found: dict[int, list[ChannelText]] = {}
    if not alert_ids:
        return found
    stmt = (
        select(Delivery.alert_id, OutboxMessage.channel, Delivery.language, OutboxMessage.text)
        .join(Delivery, Delivery.id == OutboxMessage.delivery_id)
        .where(Delivery.alert_id.in_(alert_ids))
        .distinct()
    )
    for alert_id, channel, language, text in session.execute(stmt):
        found.setdefault(alert_id, []).append(ChannelText(channel, language, text))
    return found


def _with_outbox(rendered: list[ChannelText], recorded: list[ChannelText]) -> list[ChannelText]:
    out = list(rendered)
    seen = {(t.channel, normalise_text(t.text)) for t in out}
    # The outbox keeps a thread as one text (its posts joined): the same thread as the posts listed above.
    for channel in {t.channel for t in out}:
        seen.add((channel, normalise_text(" ".join(t.text for t in out if t.channel == channel))))
    for t in recorded:
        key = (t.channel, normalise_text(t.text))
        if key not in seen:
            seen.add(key)
            out.append(t)
    return out


def _verification(
    session: Session,
    alert: Alert,
    *,
    public_base_url: str,
    renderers: Mapping[str, Renderer] | None,
    with_texts: bool = True,
) -> Verification | None:
    truth = public.public_state(session, alert)
    if truth is None:
        return None
    texts = channel_texts(session, alert, public_base_url=public_base_url, renderers=renderers) if with_texts else []
    return Verification(
        alert=alert,
        state=truth.label,
        texts=texts,
        follow_up=truth.follow_up,
        mark=status_mark(alert.status, "id"),
        reason=truth.reason,
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
        canonical = codes.normalise(claimed)
        stmt = select(Alert).where(Alert.verify_code == canonical)
    else:
        stmt = (
            select(Alert)
            .where(Alert.state.in_([s.value for s in PUBLIC_STATES] + [AlertState.APPROVED.value]))
            .order_by(Alert.id.desc())
            .limit(RECENT_ALERTS)
        )
    candidates = [a for a in session.scalars(stmt) if state_of(a) is not None]
    recorded = _outbox_texts(session, [a.id for a in candidates])
    pool: list[tuple[Alert, ChannelText]] = []
    for alert in candidates:
        rendered = rendered_texts(alert, public_base_url=public_base_url, renderers=renderers)
        pool += [(alert, t) for t in _with_outbox(rendered, recorded.get(alert.id, []))]
    for alert, t in pool:
        if normalise_text(t.text) == wanted:
            return TextCheck(
                True, verification=_verified(session, alert, public_base_url, renderers), claimed_code=claimed
            )
    if not pool or not wanted:
        return TextCheck(False, claimed_code=claimed)
    best = process.extractOne(wanted, [normalise_text(t.text) for _, t in pool], scorer=fuzz.ratio)
    assert best is not None
    _, score, index = best
    if score < SIMILAR_SCORE:
        return TextCheck(False, claimed_code=claimed, score=score)
    alert, t = pool[index]
    closest = _verified(session, alert, public_base_url, renderers)
    return TextCheck(False, closest=closest, closest_text=t, score=score, claimed_code=claimed)


def _verified(
    session: Session, alert: Alert, public_base_url: str, renderers: Mapping[str, Renderer] | None
) -> Verification:
    found = _verification(session, alert, public_base_url=public_base_url, renderers=renderers)
    assert found is not None  # candidates are issued alerts
    return found

"""The one public truth of an alert chain: what every public surface says about an alert.

An alert chain is an original and the Updates and Cancels that followed it (each referencing the one before).
`public_state` follows the chain to its last issued message and gives the effective state:

- active: issued (approved or published), not expired, not replaced, and not itself a Cancel;
- updated: a newer Update replaced it (`newest` is the last message of the chain, the one to read);
- cancelled: a Cancel ended the chain (`newest` is that Cancel, `reason` its stated reason); a Cancel message is
  itself always "cancelled", never "active";
- expired: its expiry passed (or the chain's newest message expired).

Pages, the home page, feeds and the JSON API, /cek, SMS CEK, report linking and partner webhooks all ask this
module; none decides on its own.

Every state transition also moves the public state version forward (`note_change`): one row, written last in the
transaction that changes the state, so a process that rendered a public page can tell with one cheap read whether
it is still current (broadcast.web.pagecache).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from broadcast.alerts.models import Alert, AlertState, MsgType, PublicStateVersion
from broadcast.db import utcnow

ISSUED = frozenset(
    {
        AlertState.APPROVED.value,
        AlertState.PUBLISHED.value,
        AlertState.SUPERSEDED.value,
        AlertState.CANCELLED.value,
        AlertState.EXPIRED.value,
    }
)


@dataclass(frozen=True, slots=True)
class Label:
    key: str  # active, updated, cancelled, expired
    label_id: str
    label_en: str


ACTIVE = Label("active", "AKTIF", "ACTIVE")
UPDATED = Label("updated", "DIPERBARUI", "UPDATED")
CANCELLED = Label("cancelled", "DIBATALKAN", "CANCELLED")
EXPIRED = Label("expired", "KEDALUWARSA", "EXPIRED")


@dataclass(frozen=True, slots=True)
class PublicState:
    """Where an issued alert stands in public, with the newest message of its chain."""

    label: Label
    alert: Alert
    newest: Alert  # the chain's last issued message (the alert itself when nothing followed)
    reason: str | None = None  # why it was cancelled, when it was

    @property
    def key(self) -> str:
        return self.label.key

    @property
    def active(self) -> bool:
        return self.label is ACTIVE

    @property
    def follow_up(self) -> Alert | None:
        """The newest message that replaced or cancelled this one, if any."""
        return None if self.newest is self.alert else self.newest


def _expired(alert: Alert, now: datetime) -> bool:
    return alert.state == AlertState.EXPIRED.value or (alert.expires is not None and alert.expires <= now)


def own_label(alert: Alert, *, now: datetime | None = None) -> Label | None:
    """The state an issued alert has on its own (without reading its chain); None when never issued.

    Enough to decide "active" (an active alert has no issued follow-up: publishing one changes its state)."""
    if alert.state not in ISSUED:
        return None
    if alert.msg_type == MsgType.CANCEL.value or alert.state == AlertState.CANCELLED.value:
        return CANCELLED
    if alert.state == AlertState.SUPERSEDED.value:
        return UPDATED
    if _expired(alert, now or utcnow()):
        return EXPIRED
    return ACTIVE


def is_active(alert: Alert, *, now: datetime | None = None) -> bool:
    """True when the alert is in force now: issued, unexpired, not replaced, not cancelled, and not a Cancel."""
    return own_label(alert, now=now) is ACTIVE


def _next(session: Session, alert: Alert) -> Alert | None:
    stmt = (
        select(Alert)
        .where(Alert.references_alert_id == alert.id, Alert.state.in_(ISSUED))
        .order_by(Alert.id.desc())
        .limit(1)
    )
    return session.scalar(stmt)


def chain_newest(session: Session, alert: Alert, *, max_steps: int = 100) -> Alert:
    """The last issued message of the chain that starts at `alert` (the alert itself when nothing followed)."""
    current, seen = alert, {alert.id}
    for _ in range(max_steps):
        nxt = _next(session, current)
        if nxt is None or nxt.id in seen:
            break
        seen.add(nxt.id)
        current = nxt
    return current


def cancel_reason(cancel: Alert) -> str | None:
    """The reason a Cancel gives: its note, else the description the operator wrote."""
    if cancel.note:
        return cancel.note
    return cancel.infos[0].description if cancel.infos and cancel.infos[0].description else None


def public_state(session: Session, alert: Alert, *, now: datetime | None = None) -> PublicState | None:
    """The effective public state of `alert`, following its chain to the last issued message; None when the
    alert was never issued (drafts are nobody's business)."""
    now = now or utcnow()
    own = own_label(alert, now=now)
    if own is None:
        return None
    newest = chain_newest(session, alert)
    if alert.msg_type == MsgType.CANCEL.value:
        return PublicState(CANCELLED, alert, alert, cancel_reason(alert))
    if newest.msg_type == MsgType.CANCEL.value or newest.state == AlertState.CANCELLED.value:
        cancel = newest if newest.msg_type == MsgType.CANCEL.value else None
        return PublicState(CANCELLED, alert, newest, cancel_reason(cancel) if cancel is not None else None)
    if newest is not alert:
        if _expired(newest, now):
            return PublicState(EXPIRED, alert, newest)
        return PublicState(UPDATED, alert, newest)
    return PublicState(own, alert, alert)


def state_json(truth: PublicState | None) -> dict[str, object]:
    """`{"public_state": {...}}` for JSON surfaces (public API, partner webhooks); empty for a never-issued alert."""
    if truth is None:
        return {}
    return {
        "public_state": {
            "key": truth.key,
            "label_id": truth.label.label_id,
            "label_en": truth.label.label_en,
            "newest": truth.newest.identifier,
            "reason": truth.reason,
        }
    }


_CHANGED = "broadcast.public_state_changed"
_BUMPED = "broadcast.public_state_bumped"
_local = {"changes": 0}
_local_lock = threading.Lock()


def note_change(session: Session) -> None:
    """An alert's state changes in this session's transaction: the public state version moves forward when it
    commits (written last, just before the commit, so it holds its row lock for no longer than the commit)."""
    session.info[_CHANGED] = True


def local_changes() -> int:
    """How many commits of this process moved the public state version (a cache re-reads the version at once
    when this moved, instead of waiting for its next scheduled read)."""
    return _local["changes"]


def read_version(session: Session) -> int | None:
    """The public state version; None when the row is missing (then nothing may be cached)."""
    return session.scalar(select(PublicStateVersion.version).where(PublicStateVersion.id == 1))


@event.listens_for(Session, "before_commit")
def _bump_version(session: Session) -> None:
    if session.info.pop(_CHANGED, False):
        session.execute(
            update(PublicStateVersion).where(PublicStateVersion.id == 1).values(version=PublicStateVersion.version + 1)
        )
        session.info[_BUMPED] = True


@event.listens_for(Session, "after_commit")
def _count_local(session: Session) -> None:
    if session.info.pop(_BUMPED, False):
        with _local_lock:
            _local["changes"] += 1


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_CHANGED, None)
    session.info.pop(_BUMPED, None)

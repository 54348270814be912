"""The alert lifecycle as pure rules: no session, no I/O.

draft → submitted → approved → published → (superseded | cancelled | expired).
Updates and Cancels are alerts of their own that reference the original and go through the
same approval; publishing one supersedes or cancels the original.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from broadcast.alerts.models import AlertState, CapStatus, MsgType
from broadcast.authority import RoleNotAllowed, TwoPersonRule
from broadcast.errors import Forbidden, Invalid
from broadcast.errors import InvalidTransition as InvalidTransition  # the lifecycle raises it; callers catch it here
from broadcast.users.models import Role


class Action(StrEnum):
    SUBMIT = "submit"
    APPROVE = "approve"
    REJECT = "reject"
    PUBLISH = "publish"
    SUPERSEDE = "supersede"
    CANCEL = "cancel"
    EXPIRE = "expire"


TRANSITIONS: dict[tuple[AlertState, Action], AlertState] = {
    (AlertState.DRAFT, Action.SUBMIT): AlertState.SUBMITTED,
    (AlertState.SUBMITTED, Action.APPROVE): AlertState.APPROVED,
    (AlertState.SUBMITTED, Action.REJECT): AlertState.DRAFT,
    (AlertState.APPROVED, Action.PUBLISH): AlertState.PUBLISHED,
    (AlertState.PUBLISHED, Action.SUPERSEDE): AlertState.SUPERSEDED,
    (AlertState.PUBLISHED, Action.CANCEL): AlertState.CANCELLED,
    (AlertState.APPROVED, Action.EXPIRE): AlertState.EXPIRED,
    (AlertState.PUBLISHED, Action.EXPIRE): AlertState.EXPIRED,
}

# A correction is an Update whose CAP <note> starts with this (create_follow_up(correction=True) writes it), so
# the mark travels with the CAP message to every partner; channels label it KOREKSI / CORRECTION.
CORRECTION_NOTE = "Koreksi / Correction"
AUTHOR_ROLES = frozenset({Role.OPERATOR, Role.APPROVER, Role.ADMIN})
APPROVER_ROLES = frozenset({Role.APPROVER, Role.ADMIN})
LIVE_STATES = frozenset({AlertState.APPROVED, AlertState.PUBLISHED})
PUBLIC_STATES = frozenset({AlertState.PUBLISHED, AlertState.SUPERSEDED, AlertState.CANCELLED, AlertState.EXPIRED})


class ActualNotAllowedHere(Forbidden):
    code = "actual-not-allowed-here"


class InvalidTimes(Invalid):
    code = "invalid-times"


def next_state(state: str, action: Action) -> AlertState:
    """The state after `action`.

    Raises: InvalidTransition.
    """
    target = TRANSITIONS.get((AlertState(state), action))
    if target is None:
        raise InvalidTransition(
            f"Tidak bisa '{action.value}' peringatan berstatus '{state}' / "
            f"cannot {action.value} an alert in state {state}"
        )
    return target


def check_can_author(role: str) -> None:
    """Raises: RoleNotAllowed unless the role may write alerts."""
    if Role(role) not in AUTHOR_ROLES:
        raise RoleNotAllowed(f"Peran '{role}' tidak boleh menulis peringatan / role cannot author alerts")


def check_can_approve(
    role: str, *, author_id: int, approver_id: int, contributors: frozenset[int] = frozenset()
) -> None:
    """Approval needs an approver role and a second person: neither the author nor anyone who
    edited or submitted this version.

    Raises: RoleNotAllowed, TwoPersonRule.
    """
    if Role(role) not in APPROVER_ROLES:
        raise RoleNotAllowed(f"Peran '{role}' tidak boleh menyetujui / role cannot approve alerts")
    if approver_id == author_id or approver_id in contributors:
        raise TwoPersonRule(
            "Penulis tidak boleh menyetujui peringatannya sendiri; minta orang kedua / "
            "the author cannot approve their own alert: a second person must approve"
        )


def check_status_allowed(status: str, *, production: bool) -> None:
    """Only a production deployment may publish Actual alerts; elsewhere only Exercise/Test.

    Raises: ActualNotAllowedHere.
    """
    if status == CapStatus.ACTUAL.value and not production:
        raise ActualNotAllowedHere(
            "Lingkungan ini bukan produksi: hanya peringatan LATIHAN atau TEST yang boleh diterbitkan / "
            "this is not a production deployment: only Exercise or Test alerts may be published"
        )


def check_times(*, sent: datetime | None, expires: datetime | None, now: datetime) -> None:
    """Expiry must lie after the send time and in the future.

    Raises: InvalidTimes.
    """
    if expires is None:
        return
    if sent is not None and expires <= sent:
        raise InvalidTimes("Waktu berakhir sebelum waktu kirim / expires is before sent")
    if expires <= now:
        raise InvalidTimes("Waktu berakhir sudah lewat / expires is in the past")


def follow_up_action(msg_type: str) -> Action | None:
    """What publishing an alert of `msg_type` does to the alert it references."""
    return {MsgType.UPDATE.value: Action.SUPERSEDE, MsgType.CANCEL.value: Action.CANCEL}.get(msg_type)


def is_correction(msg_type: str, note: str | None) -> bool:
    """True for an Update that corrects the alert it references (its note starts with CORRECTION_NOTE)."""
    return msg_type == MsgType.UPDATE.value and (note or "").startswith(CORRECTION_NOTE)

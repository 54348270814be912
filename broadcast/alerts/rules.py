"""The approval lifecycle as pure rules: no session, no I/O."""

from __future__ import annotations

from enum import StrEnum

from broadcast.alerts.models import AlertState
from broadcast.errors import Conflict, Forbidden
from broadcast.users.models import Role


class Action(StrEnum):
    SUBMIT = "submit"
    APPROVE = "approve"
    REJECT = "reject"
    PUBLISH = "publish"


TRANSITIONS: dict[tuple[AlertState, Action], AlertState] = {
    (AlertState.DRAFT, Action.SUBMIT): AlertState.SUBMITTED,
    (AlertState.SUBMITTED, Action.APPROVE): AlertState.APPROVED,
    (AlertState.SUBMITTED, Action.REJECT): AlertState.DRAFT,
    (AlertState.APPROVED, Action.PUBLISH): AlertState.SENT,
}

AUTHOR_ROLES = frozenset({Role.OPERATOR, Role.APPROVER, Role.ADMIN})
APPROVER_ROLES = frozenset({Role.APPROVER, Role.ADMIN})
EDITABLE = frozenset({AlertState.DRAFT})


class InvalidTransition(Conflict):
    code = "invalid-transition"


class TwoPersonRule(Forbidden):
    code = "two-person-rule"


class RoleNotAllowed(Forbidden):
    code = "role-not-allowed"


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


def check_can_approve(role: str, *, author_id: int, approver_id: int) -> None:
    """Approval needs an approver role and a second person.

    Raises: RoleNotAllowed, TwoPersonRule.
    """
    if Role(role) not in APPROVER_ROLES:
        raise RoleNotAllowed(f"Peran '{role}' tidak boleh menyetujui / role cannot approve alerts")
    if author_id == approver_id:
        raise TwoPersonRule(
            "Penulis tidak boleh menyetujui peringatannya sendiri; minta orang kedua / "
            "the author cannot approve their own alert: a second person must approve"
        )

import pytest

from broadcast.alerts import rules
from broadcast.alerts.models import AlertState
from broadcast.alerts.rules import Action, InvalidTransition, RoleNotAllowed, TwoPersonRule


def test_happy_path_draft_to_sent():
    state = AlertState.DRAFT
    for action, expected in [
        (Action.SUBMIT, AlertState.SUBMITTED),
        (Action.APPROVE, AlertState.APPROVED),
        (Action.PUBLISH, AlertState.PUBLISHED),
    ]:
        state = rules.next_state(state, action)
        assert state is expected


def test_reject_returns_to_draft():
    assert rules.next_state("submitted", Action.REJECT) is AlertState.DRAFT


@pytest.mark.parametrize(
    ("state", "action"),
    [
        ("draft", Action.APPROVE),  # nobody approves what was never submitted
        ("draft", Action.PUBLISH),
        ("submitted", Action.PUBLISH),  # no publication without approval
        ("approved", Action.APPROVE),
        ("published", Action.SUBMIT),
        ("published", Action.REJECT),
    ],
)
def test_invalid_transitions_raise(state, action):
    with pytest.raises(InvalidTransition):
        rules.next_state(state, action)


def test_author_cannot_approve_own_alert_even_as_admin():
    with pytest.raises(TwoPersonRule):
        rules.check_can_approve("admin", author_id=7, approver_id=7)


def test_operator_and_analyst_cannot_approve():
    for role in ("operator", "analyst"):
        with pytest.raises(RoleNotAllowed):
            rules.check_can_approve(role, author_id=1, approver_id=2)


def test_second_approver_may_approve():
    rules.check_can_approve("approver", author_id=1, approver_id=2)


def test_analyst_cannot_author():
    with pytest.raises(RoleNotAllowed):
        rules.check_can_author("analyst")
    rules.check_can_author("operator")

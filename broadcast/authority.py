"""Who may do what, and where: the one authority policy every service calls.

Pure: no session, no FastAPI. A service loads the object, describes it as a `Target` (the areas it covers, who
wrote it) and calls `require(actor, action, target)` before it changes what citizens see or receive or reads
personal data. Entrypoints (API routes, console forms, CLI commands, CAP/BMKG import, partner intake) never
decide on their own: they call the services.

The rules, per action, are in `POLICY`:
- roles: who may do it at all (403 /problems/role-not-allowed);
- area: the target's every area code and drawn part lies inside the actor's jurisdiction
  (403 /problems/outside-jurisdiction); a national actor (jurisdiction None) may act anywhere in Indonesia;
- two_person: the actor contributed nothing to the target (author, editors, submitter)
  (403 /problems/two-person-rule).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from shapely.geometry.base import BaseGeometry

from broadcast.errors import Forbidden
from broadcast.users.models import Role
from geo import gazetteer, jurisdiction


class Actor(Protocol):
    """Anyone acting: a signed-in user, or the system actor of an import or a CLI command (read-only here)."""

    @property
    def id(self) -> int: ...
    @property
    def role(self) -> str: ...
    @property
    def jurisdiction(self) -> str | None: ...


class OutsideJurisdiction(Forbidden):
    """The action reaches (or reads) something outside the actor's jurisdiction."""

    code = "outside-jurisdiction"

    def __init__(self, message: str, *, refused: Sequence[str] = (), code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.refused = list(refused)  # one line per refused part, for the composer and the API answer


class TwoPersonRule(Forbidden):
    """A second person must do this: the actor wrote, edited or submitted the target."""

    code = "two-person-rule"


class RoleNotAllowed(Forbidden):
    code = "role-not-allowed"


class Action(StrEnum):
    # alerts: what citizens receive
    ALERT_CREATE = "alert.create"
    ALERT_EDIT = "alert.edit"
    ALERT_SUBMIT = "alert.submit"
    ALERT_APPROVE = "alert.approve"
    ALERT_REJECT = "alert.reject"
    ALERT_FOLLOW_UP = "alert.follow_up"  # Update, Correct, Cancel: by form or by CAP import
    ALERT_IMPORT = "alert.import"
    # alerts: staff reads of what is not public yet (drafts, previews, reach, audit) and of phone numbers
    ALERT_READ = "alert.read"
    ALERT_OUTBOX_READ = "alert.outbox.read"
    # citizen reports and incidents (the reporter may get an SMS reply)
    REPORT_READ = "report.read"
    REPORT_TRIAGE = "report.triage"
    INCIDENT_TRIAGE = "incident.triage"
    INCIDENT_DRAFT_ALERT = "incident.draft_alert"
    # hoax clarifications: a public page and an SMS to every forwarder
    CLARIFICATION_SUBMIT = "clarification.submit"
    CLARIFICATION_APPROVE = "clarification.approve"
    CLARIFICATION_REJECT = "clarification.reject"
    # subscribers (phone numbers)
    SUBSCRIBER_READ = "subscriber.read"
    SUBSCRIBER_WRITE = "subscriber.write"


AUTHORS = frozenset({Role.OPERATOR.value, Role.APPROVER.value, Role.ADMIN.value})
APPROVERS = frozenset({Role.APPROVER.value, Role.ADMIN.value})
STAFF = frozenset({*AUTHORS, Role.ANALYST.value})


@dataclass(frozen=True, slots=True)
class Rule:
    roles: frozenset[str]
    area: bool  # the target must lie inside the actor's jurisdiction
    two_person: bool = False  # the actor must not be one of the target's contributors


POLICY: dict[Action, Rule] = {
    Action.ALERT_CREATE: Rule(AUTHORS, area=True),
    Action.ALERT_EDIT: Rule(AUTHORS, area=True),
    Action.ALERT_SUBMIT: Rule(AUTHORS, area=True),
    Action.ALERT_APPROVE: Rule(APPROVERS, area=True, two_person=True),
    Action.ALERT_REJECT: Rule(APPROVERS, area=True, two_person=True),
    Action.ALERT_FOLLOW_UP: Rule(AUTHORS, area=True),
    Action.ALERT_IMPORT: Rule(AUTHORS, area=True),
    Action.ALERT_READ: Rule(STAFF, area=True),
    Action.ALERT_OUTBOX_READ: Rule(AUTHORS, area=True),
    Action.REPORT_READ: Rule(STAFF, area=True),
    Action.REPORT_TRIAGE: Rule(STAFF, area=True),
    Action.INCIDENT_TRIAGE: Rule(STAFF, area=True),
    Action.INCIDENT_DRAFT_ALERT: Rule(STAFF, area=True),
    Action.CLARIFICATION_SUBMIT: Rule(STAFF, area=False),
    Action.CLARIFICATION_APPROVE: Rule(APPROVERS, area=False, two_person=True),
    Action.CLARIFICATION_REJECT: Rule(APPROVERS, area=False, two_person=True),
    Action.SUBSCRIBER_READ: Rule(AUTHORS, area=True),
    Action.SUBSCRIBER_WRITE: Rule(AUTHORS, area=True),
}


@dataclass(frozen=True, slots=True)
class Target:
    """What an action is about: the Kemendagri codes and drawn parts it covers, and who contributed to it.

    `located=False` marks an object with no known place (a report nobody could geocode): only national staff may
    act on it, since no jurisdiction can be shown to cover it."""

    codes: tuple[str, ...] = ()
    geometries: tuple[BaseGeometry, ...] = ()
    contributors: frozenset[int] = frozenset()
    located: bool = True
    label: str = ""

    @classmethod
    def area(cls, codes: Iterable[str | None], geometries: Iterable[BaseGeometry | None] = (), **kw: object) -> Target:
        """A target from codes and geometries (None entries are left out)."""
        return cls(codes=tuple(c for c in codes if c), geometries=tuple(g for g in geometries if g is not None), **kw)  # type: ignore[arg-type]


NOWHERE = Target(located=False)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    problem: str | None = None  # the problem code when refused
    reason: str = ""
    refused: tuple[str, ...] = field(default=())


ALLOWED = Decision(True)


def jurisdiction_covers(jurisdiction_code: str | None, code: str | None) -> bool:
    """True when `code` lies inside (or is) the jurisdiction; a national jurisdiction (None) covers every code."""
    if jurisdiction_code is None:
        return True
    return code is not None and gazetteer.contains(jurisdiction_code, code)


def narrowest(*jurisdictions: str | None) -> tuple[bool, str | None]:
    """The jurisdiction common to all given ones (None = national) as (overlap, code): nested codes give the
    deeper one; two disjoint codes give (False, None)."""
    out: str | None = None
    for j in jurisdictions:
        if j is None:
            continue
        if out is None or gazetteer.contains(out, j):
            out = j
        elif not gazetteer.contains(j, out):
            return False, None
    return True, out


def area_refusals(jurisdiction_code: str | None, target: Target) -> list[str]:
    """One line per part of `target` outside the jurisdiction (codes by the hierarchy; drawn parts by boundary
    with geo's tolerance at the edge, but a part lying mostly on another kabupaten's land is refused however
    small). Empty when everything lies inside."""
    refused: list[str] = []
    if not target.located and jurisdiction_code is not None:
        refused.append("objek tanpa lokasi: hanya staf nasional / no known location: national staff only")
    if jurisdiction_code is not None:
        for c in target.codes:
            if not gazetteer.contains(jurisdiction_code, c):
                refused.append(f"kode {c}: di luar {jurisdiction_code} / code {c}: outside {jurisdiction_code}")
    for n, geom in enumerate(target.geometries, start=1):
        label = f"area gambar {n}" if len(target.geometries) > 1 else "area gambar"
        for part, exc in jurisdiction.refused_parts(jurisdiction_code, geom):
            refused.append(f"{label}, bagian {part} / drawn area, part {part}: {exc}")
        try:
            jurisdiction.check_within(jurisdiction_code, geom, allow_sea=True)
        except jurisdiction.OutsideJurisdiction as exc:
            refused.append(f"{label} / drawn area: {exc}")
    return refused


def may(actor: Actor | None, action: Action, target: Target = NOWHERE) -> Decision:
    """Whether `actor` may do `action` to `target`, by POLICY; the refusal names its rule and every refused part.

    Nobody (None) may do anything here: an entrypoint must name its actor."""
    rule = POLICY[action]
    if actor is None:
        return Decision(False, "role-not-allowed", "tidak ada pelaku / no actor named")
    if actor.role not in rule.roles:
        return Decision(
            False,
            "role-not-allowed",
            f"Peran '{actor.role}' tidak boleh {action.value} / role '{actor.role}' may not {action.value} "
            f"(needs: {', '.join(sorted(rule.roles))})",
        )
    if rule.two_person and actor.id in target.contributors:
        return Decision(
            False,
            "two-person-rule",
            "Penulis, penyunting atau pengaju tidak boleh menyetujui atau menolak; minta orang kedua / "
            "the author, an editor or the submitter cannot approve or reject: a second person must",
        )
    if rule.area:
        refused = area_refusals(actor.jurisdiction, target)
        if refused:
            where = actor.jurisdiction or "Indonesia"
            return Decision(
                False,
                "outside-jurisdiction",
                f"Di luar yurisdiksi {where}: {'; '.join(refused[:5])} / outside jurisdiction {where}",
                tuple(refused),
            )
    return ALLOWED


def require(actor: Actor | None, action: Action, target: Target = NOWHERE) -> None:
    """`may`, raising the refusal.

    Raises: RoleNotAllowed, TwoPersonRule, OutsideJurisdiction.
    """
    decision = may(actor, action, target)
    if decision.allowed:
        return
    if decision.problem == "two-person-rule":
        raise TwoPersonRule(decision.reason)
    if decision.problem == "outside-jurisdiction":
        raise OutsideJurisdiction(decision.reason, refused=decision.refused)
    raise RoleNotAllowed(decision.reason)

"""Alert use cases: write, edit, submit, approve, reject, publish, follow up, expire, import, export.

Services flush; callers commit. Every state change is written to the audit chain.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shapely.geometry.base import BaseGeometry
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, object_session

from broadcast import events
from broadcast.alerts import capmap, public, rules, target_area
from broadcast.alerts.models import Alert, AlertArea, AlertInfo, AlertState, CapStatus, MsgType
from broadcast.alerts.rules import Action
from broadcast.alerts.schemas import AlertCreate
from broadcast.audit import service as audit
from broadcast.authority import Action as Can
from broadcast.authority import Actor, OutsideJurisdiction, Target, require  # noqa: F401 (re-exported)
from broadcast.cap import validation
from broadcast.cap.codec import CapError
from broadcast.db import utcnow
from broadcast.errors import Conflict, NotFound
from broadcast.users.models import User
from channels.base import AlertData, InfoData
from geo import gazetteer


class AlertNotFound(NotFound):
    code = "alert-not-found"


class AlertExpired(Conflict):
    code = "alert-expired"


class AlreadyImported(Conflict):
    code = "already-imported"


class NotEditable(Conflict):
    code = "not-editable"


def new_identifier() -> str:
    """A CAP identifier: unique, no spaces, commas or reserved characters."""
    return f"BCAST-{utcnow():%Y%m%d%H%M%S}-{secrets.token_hex(4)}"


def target_of_resolved(resolved: Sequence[target_area.ResolvedArea]) -> Target:
    """The authority target of areas not yet stored: their codes and drawn parts."""
    return Target.area([c for r in resolved for c in r.codes], [r.drawn for r in resolved])


def alert_target(alert: Alert, *, contributors: frozenset[int] = frozenset()) -> Target:
    """The authority target of a stored alert: every code and drawn part of its areas, and who contributed."""
    return Target.area(
        alert_codes(alert),
        [target_area.drawn_geometry(a) for a in alert.areas],
        contributors=contributors,
        label=f"alert {alert.id}",
    )


def check_jurisdiction(user: User, codes: Sequence[str], *, geometries: Sequence[BaseGeometry] = ()) -> None:
    """Every code (by the code hierarchy) and every drawn geometry lies inside the user's jurisdiction (the
    authority policy's area rule, as for writing an alert).

    Raises: RoleNotAllowed, OutsideJurisdiction, naming every refused part.
    """
    require(user, Can.ALERT_CREATE, Target.area(codes, geometries))


def check_areas_jurisdiction(user: User, resolved: Sequence[target_area.ResolvedArea]) -> None:
    """Every resolved (not yet stored) area lies inside the user's jurisdiction.

    Raises: RoleNotAllowed, OutsideJurisdiction.
    """
    require(user, Can.ALERT_CREATE, target_of_resolved(resolved))


def snapshot(alert: Alert) -> dict[str, Any]:
    """The audited view of an alert: lifecycle fields plus its content."""
    return {
        "state": alert.state,
        "status": alert.status,
        "msg_type": alert.msg_type,
        "references": alert.references,
        "channels": list(alert.channels),
        "expires": alert.expires,
        "approver_id": alert.approver_id,
        "infos": [
            {
                "language": i.language,
                "headline": i.headline,
                "severity": i.severity,
                "urgency": i.urgency,
                "description": i.description,
                "instruction": i.instruction,
            }
            for i in alert.infos
        ],
        "geocodes": alert_codes(alert),
        "drawn": [a.target_geometry for a in alert.areas if a.target_geometry],
    }


def _audit(
    session: Session, alert: Alert, action: str, *, actor_id: int | None, before: dict[str, Any] | None = None
) -> None:
    audit.record(
        session,
        actor_id=actor_id,
        action=action,
        subject_type="alert",
        subject_id=alert.id,
        before=before,
        after=snapshot(alert),
    )


def alert_codes(alert: Alert) -> list[str]:
    """Every Kemendagri code the alert targets."""
    return sorted({c for a in alert.areas for c in a.geocodes})


def _content_from(
    data: AlertCreate, resolved: Sequence[target_area.ResolvedArea]
) -> tuple[list[AlertInfo], list[AlertArea]]:
    infos = [
        AlertInfo(
            position=n,
            **info.model_dump(exclude={"expires", "parameters"}),
            parameters=[p.model_dump() for p in info.parameters],
            expires=info.expires or data.expires,
        )
        for n, info in enumerate(data.infos)
    ]
    areas = [r.to_row(a.area_desc) for a, r in zip(data.areas, resolved, strict=True)]
    return infos, areas


def create_alert(session: Session, *, data: AlertCreate, author: User, sender: str) -> Alert:
    """A new draft alert written by `author`, inside their jurisdiction.

    Raises: RoleNotAllowed, InvalidGeometry, OutsideJurisdiction, InvalidTimes.
    """
    resolved = target_area.resolve_areas(data.areas)
    require(author, Can.ALERT_CREATE, target_of_resolved(resolved))
    rules.check_times(sent=None, expires=data.expires, now=utcnow())
    infos, areas = _content_from(data, resolved)
    alert = Alert(
        identifier=new_identifier(),
        sender=sender,
        status=data.status,
        state=AlertState.DRAFT.value,
        channels=list(data.channels),
        author_id=author.id,
        expires=data.expires,
        note=data.note,
        infos=infos,
        areas=areas,
    )
    session.add(alert)
    session.flush()
    _audit(session, alert, "alert.create", actor_id=author.id)
    return alert


def edit_draft(session: Session, *, alert_id: int, data: AlertCreate, actor: User) -> Alert:
    """Replace the content of a draft (a follow-up keeps its type, reference and status).

    Raises: AlertNotFound, NotEditable, RoleNotAllowed, InvalidGeometry, OutsideJurisdiction, InvalidTimes.
    """
    alert = _lock(session, alert_id)
    require(actor, Can.ALERT_EDIT, alert_target(alert))
    resolved = target_area.resolve_areas(data.areas)
    require(actor, Can.ALERT_EDIT, target_of_resolved(resolved))
    if alert.state != AlertState.DRAFT.value:
        raise NotEditable(f"Hanya draf yang bisa diubah / only drafts can be edited (state {alert.state})")
    if alert.references_alert_id is not None and data.status != alert.status:
        raise NotEditable("Status pembaruan harus sama dengan aslinya / a follow-up keeps the original status")
    rules.check_times(sent=None, expires=data.expires, now=utcnow())
    before = snapshot(alert)
    infos, areas = _content_from(data, resolved)
    alert.infos.clear()
    alert.areas.clear()
    session.flush()
    alert.infos.extend(infos)
    alert.areas.extend(areas)
    alert.status = data.status
    alert.channels = list(data.channels)
    alert.expires = data.expires
    alert.note = data.note if data.note is not None else alert.note
    session.flush()
    _audit(session, alert, "alert.edit", actor_id=actor.id, before=before)
    return alert


def get_alert(session: Session, *, alert_id: int) -> Alert:
    """The alert with this id.

    Raises: AlertNotFound.
    """
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise AlertNotFound(f"Peringatan {alert_id} tidak ditemukan / alert not found")
    return alert


def read_alert(session: Session, *, alert_id: int, actor: User, what: str = "detail") -> Alert:
    """The alert, for staff who may read it: anyone on staff for an issued (public) alert's detail; inside the
    jurisdiction for a draft or submitted one, for its audit trail (`what="audit"`), and for its outbox with
    phone numbers (`what="outbox"`, authors and approvers only: analysts read aggregates).

    Raises: AlertNotFound, RoleNotAllowed, OutsideJurisdiction.
    """
    alert = get_alert(session, alert_id=alert_id)
    if what == "outbox":
        require(actor, Can.ALERT_OUTBOX_READ, alert_target(alert))
    elif what == "audit" or AlertState(alert.state) not in rules.PUBLIC_STATES:
        require(actor, Can.ALERT_READ, alert_target(alert))
    else:
        require(actor, Can.ALERT_READ, Target())
    return alert


def readable(actor: User, alerts: Sequence[Alert]) -> list[Alert]:
    """Those of `alerts` the actor may read (issued ones, and drafts inside their jurisdiction)."""
    from broadcast.authority import may

    return [
        a
        for a in alerts
        if AlertState(a.state) in rules.PUBLIC_STATES or may(actor, Can.ALERT_READ, alert_target(a)).allowed
    ]


def find_alert_by_identifier(session: Session, *, identifier: str) -> Alert | None:
    """The alert with this CAP identifier, if any."""
    return session.scalar(select(Alert).where(Alert.identifier == identifier))


def list_alerts(session: Session, *, state: str | None = None, limit: int = 100, offset: int = 0) -> list[Alert]:
    """Alerts, newest first."""
    stmt = select(Alert).order_by(Alert.id.desc()).limit(limit).offset(offset)
    if state:
        stmt = stmt.where(Alert.state == state)
    return list(session.scalars(stmt))


def current_for_area(session: Session, *, code: str, limit: int = 3) -> list[Alert]:
    """Alerts in force (by the public truth: never a Cancel, never a replaced one) whose area contains `code` or
    lies inside it, newest first."""
    return current_for_areas(session, codes=[code], limit=limit)[code]


def current_for_areas(session: Session, *, codes: Iterable[str], limit: int = 3) -> dict[str, list[Alert]]:
    """`current_for_area` for each of `codes` (code → alerts, newest first), reading the alerts in force once."""
    from broadcast.alerts.public import is_active

    now = utcnow()
    stmt = (
        select(Alert)
        .where(Alert.state == AlertState.PUBLISHED.value, or_(Alert.expires.is_(None), Alert.expires > now))
        .order_by(Alert.sent.desc())
        .limit(500)
    )
    in_force = [(a, alert_codes(a)) for a in session.scalars(stmt) if is_active(a, now=now)]
    return {
        code: [
            a
            for a, targets in in_force
            if any(gazetteer.contains(c, code) or gazetteer.contains(code, c) for c in targets)
        ][:limit]
        for code in dict.fromkeys(codes)
    }


def list_follow_ups(session: Session, *, alert_id: int) -> list[Alert]:
    """Updates and Cancels that reference this alert, oldest first."""
    stmt = select(Alert).where(Alert.references_alert_id == alert_id).order_by(Alert.id)
    return list(session.scalars(stmt))


def _transition(alert: Alert, action: Action) -> dict[str, Any]:
    before = snapshot(alert)
    alert.state = rules.next_state(alert.state, action).value
    session = object_session(alert)
    if session is not None:
        # The one place an alert's state changes: cached public pages everywhere see it at the commit.
        public.note_change(session)
    return before


def _lock(session: Session, alert_id: int) -> Alert:
    """Load the alert row locked until commit, so two approvers cannot race (on SQLite the database's write lock:
    broadcast.db)."""
    alert = session.scalar(select(Alert).where(Alert.id == alert_id).with_for_update())
    if alert is None:
        raise AlertNotFound(f"Peringatan {alert_id} tidak ditemukan / alert not found")
    return alert


def submit_alert(session: Session, *, alert_id: int, actor: User) -> Alert:
    """Send a draft for approval (the author, or another author-role user in the jurisdiction).

    Raises: AlertNotFound, InvalidTransition, RoleNotAllowed, OutsideJurisdiction.
    """
    alert = _lock(session, alert_id)
    require(actor, Can.ALERT_SUBMIT, alert_target(alert))
    before = _transition(alert, Action.SUBMIT)
    alert.submitted_at = utcnow()
    alert.rejection_reason = None
    session.flush()
    _audit(session, alert, "alert.submit", actor_id=actor.id, before=before)
    return alert


def approve_alert(session: Session, *, alert_id: int, approver: User, production: bool) -> Alert:
    """Approve a submitted alert for publication: a second person, a status this deployment may
    publish, an expiry still ahead, and a message that is valid CAP.

    Raises: AlertNotFound, InvalidTransition, RoleNotAllowed, TwoPersonRule, OutsideJurisdiction,
    ActualNotAllowedHere, AlertExpired, CapError.
    """
    alert = _lock(session, alert_id)
    require(approver, Can.ALERT_APPROVE, alert_target(alert, contributors=contributors(session, alert=alert)))
    if alert.references_alert_id is not None:
        # A follow-up changes what the original's recipients were told: the approver must cover the original.
        require(approver, Can.ALERT_FOLLOW_UP, alert_target(get_alert(session, alert_id=alert.references_alert_id)))
    rules.check_status_allowed(alert.status, production=production)
    now = utcnow()
    if alert.expires is not None and alert.expires <= now:
        raise AlertExpired("Peringatan sudah kedaluwarsa / the alert has already expired")
    if alert.references_alert_id is not None:
        original = get_alert(session, alert_id=alert.references_alert_id)
        if original.state != AlertState.PUBLISHED.value:
            raise rules.InvalidTransition(
                f"Peringatan asli sudah '{original.state}' / the original alert is already {original.state}"
            )
    before = _transition(alert, Action.APPROVE)
    alert.approver_id = approver.id
    alert.approved_at = now
    alert.sent = now
    validation.export(capmap.alert_to_message(alert))  # never approve what would publish invalid CAP
    session.flush()
    _audit(session, alert, "alert.approve", actor_id=approver.id, before=before)
    return alert


def start_delivery(session: Session, *, alert: Alert) -> None:
    """Record that an approved alert's delivery is to start (AlertApproved: its fan-out, through the enqueue outbox,
    after the commit). The approval entrypoint calls it; an approval inside a tool or a test that drives planning
    itself does not."""
    first = alert.infos[0]
    events.record(session, events.AlertApproved(alert.id, alert.msg_type, first.severity, first.urgency))


CONTRIBUTING_ACTIONS = frozenset(
    {
        "alert.create",
        "alert.edit",
        "alert.submit",
        "alert.import",
        "alert.correct",
        "alert.update.draft",
        "alert.cancel.draft",
    }
)


def contributors(session: Session, *, alert: Alert) -> frozenset[int]:
    """Everyone who wrote, edited or submitted this alert: its author and every contributor in the audit chain."""
    entries = audit.entries_for(session, subject_type="alert", subject_id=alert.id)
    found = {e.actor_id for e in entries if e.action in CONTRIBUTING_ACTIONS and e.actor_id is not None}
    return frozenset({*found, alert.author_id})


def reject_alert(session: Session, *, alert_id: int, approver: User, reason: str) -> Alert:
    """Send a submitted alert back to its author as a draft, with the reason.

    Raises: AlertNotFound, InvalidTransition, RoleNotAllowed, TwoPersonRule, OutsideJurisdiction.
    """
    alert = _lock(session, alert_id)
    require(approver, Can.ALERT_REJECT, alert_target(alert, contributors=contributors(session, alert=alert)))
    before = _transition(alert, Action.REJECT)
    alert.rejection_reason = reason
    session.flush()
    audit.record(
        session,
        actor_id=approver.id,
        action="alert.reject",
        subject_type="alert",
        subject_id=alert.id,
        before=before,
        after={**snapshot(alert), "reason": reason},
    )
    return alert


def mark_published(session: Session, *, alert: Alert) -> Alert:
    """Record that delivery has been planned: the alert is live (a system action). Publishing an
    Update supersedes its original; publishing a Cancel cancels it.

    Raises: InvalidTransition.
    """
    before = _transition(alert, Action.PUBLISH)
    alert.published_at = utcnow()
    session.flush()
    _audit(session, alert, "alert.publish", actor_id=None, before=before)
    events.record(session, events.AlertPublished(alert.id))
    action = rules.follow_up_action(alert.msg_type)
    if action is not None and alert.references_alert_id is not None:
        original = _lock(session, alert.references_alert_id)
        if original.state == AlertState.PUBLISHED.value:
            before = _transition(original, action)
            session.flush()
            audit.record(
                session,
                actor_id=None,
                action=f"alert.{action.value}",
                subject_type="alert",
                subject_id=original.id,
                before=before,
                after={**snapshot(original), "by": alert.id},
            )
    return alert


def create_follow_up(
    session: Session,
    *,
    original_id: int,
    actor: User,
    msg_type: MsgType,
    reason: str | None = None,
    correction: bool = False,
    reason_en: str | None = None,
) -> Alert:
    """A draft Update or Cancel of a published alert, its content copied from the original, its
    CAP `references` naming it; it goes through the same approval. A Cancel's `reason` (Bahasa Indonesia) and
    `reason_en` (English) become the description of the info block in that language, so each language's
    message is wholly in that language; a language without a reason gets none.

    Raises: AlertNotFound, InvalidTransition, RoleNotAllowed, OutsideJurisdiction.
    """
    if msg_type not in (MsgType.UPDATE, MsgType.CANCEL):
        raise ValueError("a follow-up is an Update or a Cancel")
    original = get_alert(session, alert_id=original_id)
    require(actor, Can.ALERT_FOLLOW_UP, alert_target(original))
    if original.state != AlertState.PUBLISHED.value:
        raise rules.InvalidTransition(
            f"Hanya peringatan yang terbit bisa diperbarui/dibatalkan (status '{original.state}') / "
            f"only a published alert can be updated or cancelled"
        )
    refs = " ".join(filter(None, [original.references, capmap.reference_of(original)]))
    note = reason
    if correction:
        note = rules.CORRECTION_NOTE + (f": {reason}" if reason else "")
    follow = Alert(
        identifier=new_identifier(),
        sender=original.sender,
        status=original.status,
        msg_type=msg_type.value,
        scope=original.scope,
        references=refs,
        references_alert_id=original.id,
        note=note,
        state=AlertState.DRAFT.value,
        channels=list(original.channels),
        author_id=actor.id,
        expires=original.expires if original.expires and original.expires > utcnow() else None,
        infos=[
            _copy_info(
                i,
                cancel=msg_type is MsgType.CANCEL,
                reason=_reason_in(i.language, reason, reason_en, only=len(original.infos) == 1),
            )
            for i in original.infos
        ],
        areas=[_copy_area(a) for a in original.areas],
    )
    session.add(follow)
    session.flush()
    action = "alert.correct" if correction else f"alert.{msg_type.value.lower()}.draft"
    audit.record(
        session,
        actor_id=actor.id,
        action=action,
        subject_type="alert",
        subject_id=follow.id,
        after={**snapshot(follow), "original_id": original.id},
    )
    return follow


def _reason_in(language: str, reason: str | None, reason_en: str | None, *, only: bool) -> str | None:
    """The cancel reason for an info block in `language`: English blocks get `reason_en`, the others `reason`;
    an alert with a single block takes whichever reason there is."""
    english = language.lower().startswith("en")
    mine, other = (reason_en, reason) if english else (reason, reason_en)
    return mine or (other if only else None)


def _copy_info(info: AlertInfo, *, cancel: bool, reason: str | None) -> AlertInfo:
    fields = {
        c: getattr(info, c)
        for c in (
            "position",
            "language",
            "category",
            "event",
            "urgency",
            "severity",
            "certainty",
            "onset",
            "expires",
            "headline",
            "description",
            "instruction",
            "web",
            "contact",
            "parameters",
            "hazard",
            "response_types",
            "audience",
            "event_codes",
            "effective",
            "sender_name",
            "resources",
        )
    }
    if cancel:
        # Channels prefix "DIBATALKAN"/"CANCELLED" from msgType; the headline stays the original's.
        # The reason in this block's language, or nothing: never the other language's words.
        fields["description"] = reason or ""
        fields["instruction"] = ""
        fields["response_types"] = ["AllClear"]
        fields["urgency"], fields["severity"], fields["certainty"] = "Past", "Minor", "Observed"
    return AlertInfo(**fields)


def _copy_area(area: AlertArea) -> AlertArea:
    return AlertArea(
        **{
            c: getattr(area, c)
            for c in (
                "area_desc",
                "geocodes",
                "polygons",
                "circles",
                "other_geocodes",
                "target_geometry",
                "cap_overshoot_m",
                "altitude",
                "ceiling",
                "info_position",
            )
        }
    )


def expire_due(session: Session, *, now: datetime | None = None) -> list[Alert]:
    """Move approved or published alerts whose expiry has passed to `expired` (a system action)."""
    now = now or utcnow()
    due = session.scalars(
        select(Alert)
        .where(
            Alert.state.in_([AlertState.APPROVED.value, AlertState.PUBLISHED.value]),
            Alert.expires.is_not(None),
            Alert.expires <= now,
        )
        .with_for_update()
    ).all()
    for alert in due:
        before = _transition(alert, Action.EXPIRE)
        session.flush()
        _audit(session, alert, "alert.expire", actor_id=None, before=before)
    return list(due)


def is_live(alert: Alert, *, now: datetime | None = None) -> bool:
    """True while the alert may still be delivered: approved or published, and not expired."""
    if AlertState(alert.state) not in rules.LIVE_STATES:
        return False
    return alert.expires is None or alert.expires > (now or utcnow())


@dataclass
class ImportedDraft:
    """An alert from outside as its source gave it: CAP columns (identifier, sender, times kept), info and area
    rows, where it came from, and what its audit entry adds (claimed sender, source link, ...)."""

    columns: dict[str, Any]
    infos: list[AlertInfo]
    areas: list[AlertArea]
    origin: str
    origin_ref: str
    channels: Sequence[str]
    audit: dict[str, Any] = field(default_factory=dict)


def create_imported(session: Session, *, draft: ImportedDraft, author: Actor) -> Alert:
    """The one way an alert from outside (a CAP document or feed, BMKG) becomes a draft: never stored twice (same
    identifier or origin reference), with something to broadcast and inside the importer's jurisdiction. An Update
    or Cancel naming one of our alerts is a follow-up of it: the importer's jurisdiction must cover that alert's
    area, as for a follow-up written in the console. Audited as `alert.import`.

    Raises: AlreadyImported, CapError (no info block: nothing to broadcast), RoleNotAllowed, OutsideJurisdiction.
    """
    if not draft.infos:
        raise CapError(["tidak ada blok <info>: tidak ada yang bisa disiarkan / no <info> block: nothing to broadcast"])
    identifier = str(draft.columns["identifier"])
    clash = session.scalar(
        select(Alert.id).where(or_(Alert.identifier == identifier, Alert.origin_ref == draft.origin_ref))
    )
    if clash is not None:
        raise AlreadyImported(
            f"Pesan '{identifier}' sudah diimpor sebagai peringatan {clash} / already imported as alert {clash}"
        )
    references = str(draft.columns.get("references") or "")
    original = None
    if references:
        last_ref = references.split()[-1].split(",")
        if len(last_ref) >= 2:
            original = find_alert_by_identifier(session, identifier=last_ref[1])
    # Every referenced alert of ours, not only the last one: a follow-up may only touch what the importer covers.
    for ref in references.split():
        parts = ref.split(",")
        referenced = find_alert_by_identifier(session, identifier=parts[1]) if len(parts) >= 2 else None
        if referenced is not None:
            require(author, Can.ALERT_FOLLOW_UP, alert_target(referenced))
    require(
        author,
        Can.ALERT_IMPORT,
        Target.area([c for a in draft.areas for c in a.geocodes], [target_area.drawn_geometry(a) for a in draft.areas]),
    )
    alert = Alert(
        **draft.columns,
        state=AlertState.DRAFT.value,
        channels=list(draft.channels),
        author_id=author.id,
        origin=draft.origin,
        origin_ref=draft.origin_ref,
        references_alert_id=original.id if original else None,
        infos=draft.infos,
        areas=draft.areas,
    )
    # The source's <sent> is kept so the draft exports as it came; approval sets our own time.
    session.add(alert)
    session.flush()
    audit.record(
        session,
        actor_id=author.id,
        action="alert.import",
        subject_type="alert",
        subject_id=alert.id,
        after={**snapshot(alert), "origin": draft.origin, "origin_ref": draft.origin_ref, **draft.audit},
    )
    return alert


def add_imported_languages(
    session: Session, *, alert: Alert, infos: Sequence[AlertInfo], author: Actor, origin_ref: str
) -> bool:
    """The same imported warning in another language joins its draft: the info blocks in a language the draft
    lacks are added, Indonesian first, then English. False (nothing changed) when the alert is no longer a draft
    or has every language already; audited as `alert.edit`."""
    languages = {i.language for i in alert.infos}
    new = [i for i in infos if i.language not in languages]
    if alert.state != AlertState.DRAFT.value or not new:
        return False
    alert.infos.extend(new)
    # Move every block out of the way, then renumber (positions are unique).
    for n, info in enumerate(alert.infos):
        info.position = 1000 + n
    session.flush()
    ordered = sorted(alert.infos, key=lambda i: (not i.language.startswith("id"), i.position))
    for n, info in enumerate(ordered):
        info.position = n
    alert.infos.sort(key=lambda i: i.position)
    session.flush()
    audit.record(
        session,
        actor_id=author.id,
        action="alert.edit",
        subject_type="alert",
        subject_id=alert.id,
        after={**snapshot(alert), "origin_ref": origin_ref},
    )
    return True


def export_cap(alert: Alert) -> bytes:
    """The alert as schema-valid CAP 1.2 (a draft gets the current time as a provisional `sent`).

    Raises: CapError.
    """
    # The provisional time is passed in, not set on a copy: copying would move the area and info rows
    # to the copy through their back-references.
    return validation.export(capmap.alert_to_message(alert, sent=alert.sent or utcnow()))


def to_alert_data(alert: Alert, *, public_base_url: str, previous: Alert | None = None) -> AlertData:
    """The plain data channels render from. An Update carries the version it replaces (`previous`, else the
    referenced alert looked up in the alert's session), so every channel can say what changed."""
    if previous is None and alert.references_alert_id and alert.msg_type in (MsgType.UPDATE, MsgType.ERROR):
        session = object_session(alert)
        previous = session.get(Alert, alert.references_alert_id) if session is not None else None
    return AlertData(
        id=alert.id,
        identifier=alert.identifier,
        sender=alert.sender,
        status=alert.status,
        msg_type=alert.msg_type,
        correction=rules.is_correction(alert.msg_type, alert.note),
        sent=alert.sent,
        expires=alert.expires,
        area_desc=_area_desc(alert),
        public_url=public_url(public_base_url, alert.identifier),
        short_url=short_url(public_base_url, alert.id),
        references=alert.references,
        area_codes=tuple(alert_codes(alert)),
        verify_code=alert.verify_code,
        verify_url=f"{public_base_url.rstrip('/')}/cek",
        infos=_info_data(alert),
        previous_infos=_info_data(previous) if previous is not None else (),
        previous_area_desc=_area_desc(previous) if previous is not None else None,
    )


def _area_desc(alert: Alert) -> str:
    return "; ".join(a.area_desc for a in alert.areas)


def _info_data(alert: Alert) -> tuple[InfoData, ...]:
    return tuple(
        InfoData(
            language=i.language,
            event=i.event,
            category=i.category,
            urgency=i.urgency,
            severity=i.severity,
            certainty=i.certainty,
            headline=i.headline,
            description=i.description,
            instruction=i.instruction,
            contact=i.contact,
        )
        for i in alert.infos
    )


def public_url(base: str, identifier: str) -> str:
    """The public page of an alert."""
    return f"{base.rstrip('/')}/peringatan/{identifier}"


def short_url(base: str, alert_id: int) -> str:
    """A short link to the public page, for SMS where every character counts."""
    return f"{base.rstrip('/')}/p/{alert_id}"


def is_exercise_like(alert: Alert) -> bool:
    """Exercise, Test and other non-Actual alerts."""
    return alert.status != CapStatus.ACTUAL.value

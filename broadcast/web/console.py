"""The operator console: alert list, composer, approval queue, review with previews, delivery progress.

Pages are server-rendered; every change goes through the JSON API (cookie session + CSRF header) from small
scripts in web/static, so the console and the API can never disagree about the rules.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from broadcast.alerts import composer, hazards
from broadcast.alerts import service as alerts
from broadcast.alerts.models import ALERT_STATES, Alert, AlertState
from broadcast.alerts.schemas import AlertRead, HazardRead
from broadcast.api.deps import SessionDep, SettingsDep, find_current_user
from broadcast.api.pages import render_page, sign_in_redirect
from broadcast.audit import service as audit
from broadcast.dispatch import enqueue
from broadcast.dispatch.models import Delivery, DeliveryState
from broadcast.dispatch.progress import delivery_counts, people_progress, progress
from broadcast.dispatch.wiring import configured_renderers, recipient_cap_usage
from broadcast.errors import BroadcastError
from broadcast.settings import Environment, Settings
from broadcast.users.models import Role, User

router = APIRouter(tags=["console pages"], include_in_schema=False)

AUTHOR_ROLES = frozenset({Role.OPERATOR.value, Role.APPROVER.value, Role.ADMIN.value})
APPROVER_ROLES = frozenset({Role.APPROVER.value, Role.ADMIN.value})
STATE_NAMES = {
    "draft": "Draf / Draft",
    "submitted": "Menunggu persetujuan / Awaiting approval",
    "approved": "Disetujui / Approved",
    "published": "Terbit / Published",
    "superseded": "Diganti / Superseded",
    "cancelled": "Dibatalkan / Cancelled",
    "expired": "Berakhir / Expired",
}


def _signed_in(request: Request, session: Session, settings: Settings) -> User | None:
    try:
        return find_current_user(request, session, settings)
    except BroadcastError:
        return None


def _page(request: Request, session: Session, settings: Settings, build: Callable[[User], Response]) -> Response:
    user = _signed_in(request, session, settings)
    if user is None:
        return sign_in_redirect(request)
    request.state.user = user
    return build(user)


def _common(session: Session, settings: Settings, user: User) -> dict[str, Any]:
    waiting = len(alerts.readable(user, alerts.list_alerts(session, state=AlertState.SUBMITTED.value, limit=500)))
    return {
        "user": user,
        "waiting": waiting,
        "production": settings.environment is Environment.PRODUCTION,
        "environment": settings.environment.value,
        "state_names": STATE_NAMES,
        "can_author": user.role in AUTHOR_ROLES,
        "can_approve_role": user.role in APPROVER_ROLES,
    }


def _matches(alert: Alert, q: str) -> bool:
    needle = q.casefold()
    hay = [alert.identifier, *(i.headline for i in alert.infos), *(i.event for i in alert.infos)]
    hay += [a.area_desc for a in alert.areas] + alerts.alert_codes(alert)
    return any(needle in h.casefold() for h in hay)


@router.get("/konsol", response_class=HTMLResponse, response_model=None)
def console(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    q: str = Query(default="", max_length=100),
    state: str = Query(default="", max_length=20),
    status: str = Query(default="", max_length=20),
) -> Response:
    """All alerts, newest first, searchable by text and filtered by state and status, with delivery counts."""

    def build(user: User) -> Response:
        found = alerts.list_alerts(session, state=state if state in ALERT_STATES else None, limit=500)
        found = alerts.readable(user, found)
        if status in ("Actual", "Exercise", "Test"):
            found = [a for a in found if a.status == status]
        if q.strip():
            found = [a for a in found if _matches(a, q.strip())]
        rows = [(a, delivery_counts(session, alert_id=a.id)) for a in found[:200]]
        return render_page(
            request,
            "console.html",
            rows=rows,
            q=q,
            state=state,
            status=status,
            states=ALERT_STATES,
            **_common(session, settings, user),
        )

    return _page(request, session, settings, build)


@router.get("/konsol/persetujuan", response_class=HTMLResponse, response_model=None)
def approval_queue(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """Submitted alerts waiting for a second person, oldest first (the longest wait on top)."""

    def build(user: User) -> Response:
        queue = sorted(
            alerts.readable(user, alerts.list_alerts(session, state=AlertState.SUBMITTED.value, limit=500)),
            key=lambda a: a.submitted_at or a.created_at,
        )
        return render_page(request, "console_queue.html", queue=queue, **_common(session, settings, user))

    return _page(request, session, settings, build)


def _composer(request: Request, session: Session, settings: Settings, user: User, alert: Alert | None) -> Response:
    catalog = [HazardRead.model_validate(h, from_attributes=True).model_dump() for h in hazards.catalog()]
    return render_page(
        request,
        "composer.html",
        alert=alert,
        hazards=catalog,
        alert_json=json.dumps(AlertRead.model_validate(alert).model_dump(mode="json")) if alert else "null",
        hazards_json=json.dumps(catalog),
        start_code=user.jurisdiction or "",
        **_common(session, settings, user),
    )


@router.get("/konsol/baru", response_class=HTMLResponse, response_model=None)
def compose_new(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """The composer for a new alert."""
    return _page(request, session, settings, lambda user: _composer(request, session, settings, user, None))


@router.get("/konsol/peringatan/{alert_id}/ubah", response_class=HTMLResponse, response_model=None)
def compose_edit(alert_id: int, request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """The composer for a draft (also a follow-up started from the original): prefilled from it."""

    def build(user: User) -> Response:
        alert = alerts.read_alert(session, alert_id=alert_id, actor=user, what="audit")
        if alert.state != AlertState.DRAFT.value:
            return RedirectResponse(f"/konsol/peringatan/{alert_id}", status_code=303)
        return _composer(request, session, settings, user, alert)

    return _page(request, session, settings, build)


def _failures(session: Session, alert_id: int, limit: int = 100) -> list[Delivery]:
    stmt = (
        select(Delivery)
        .where(
            Delivery.alert_id == alert_id,
            Delivery.state.in_([DeliveryState.FAILED.value, DeliveryState.UNDELIVERED.value]),
        )
        .order_by(Delivery.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def _audit_rows(session: Session, alert: Alert) -> list[dict[str, Any]]:
    names: dict[int, str] = {}
    rows = []
    for e in audit.entries_for(session, subject_type="alert", subject_id=alert.id):
        if e.actor_id is not None and e.actor_id not in names:
            actor = session.get(User, e.actor_id)
            names[e.actor_id] = actor.username if actor else str(e.actor_id)
        after = e.after or {}
        rows.append(
            {
                "at": e.at,
                "actor": names.get(e.actor_id, "sistem / system") if e.actor_id is not None else "sistem / system",
                "action": e.action,
                "state": after.get("state", ""),
                "reason": after.get("reason", ""),
                "hash": e.hash[:12],
            }
        )
    return rows


@router.get("/konsol/peringatan/{alert_id}", response_class=HTMLResponse, response_model=None)
def review(alert_id: int, request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """One alert: previews from the real renderers, the diff against the original for follow-ups, approve (with a
    confirm step naming status and recipients) or reject with a reason, follow-ups, failures and audit trail."""

    def build(user: User) -> Response:
        alert = alerts.read_alert(session, alert_id=alert_id, actor=user, what="audit")
        preview = composer.previews(
            session,
            alert=alert,
            public_base_url=settings.public_base_url,
            renderers=configured_renderers(settings),
            caps=recipient_cap_usage(settings, list(alert.channels)),
        )
        original = alerts.get_alert(session, alert_id=alert.references_alert_id) if alert.references_alert_id else None
        production = settings.environment is Environment.PRODUCTION
        contributors = alerts.contributors(session, alert=alert)
        submitted = alert.state == AlertState.SUBMITTED.value
        return render_page(
            request,
            "console_alert.html",
            alert=alert,
            preview=preview,
            original=original,
            diff=composer.version_diff(original, alert) if original else [],
            follow_ups=alerts.list_follow_ups(session, alert_id=alert.id),
            audit_rows=_audit_rows(session, alert),
            failures=_failures(session, alert.id),
            counts=delivery_counts(session, alert_id=alert.id),
            author=session.get(User, alert.author_id),
            approver=session.get(User, alert.approver_id) if alert.approver_id else None,
            own=user.id in contributors or user.id == alert.author_id,
            may_review=submitted and user.role in APPROVER_ROLES,
            status_blocked=alert.status == "Actual" and not production,
            may_edit=alert.state == AlertState.DRAFT.value and user.role in AUTHOR_ROLES,
            may_follow_up=alert.state == AlertState.PUBLISHED.value and user.role in AUTHOR_ROLES,
            **_common(session, settings, user),
        )

    return _page(request, session, settings, build)


@router.get("/konsol/peringatan/{alert_id}/progres", response_class=HTMLResponse, response_model=None)
def progress_page(alert_id: int, request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """Live delivery progress per channel (server-sent events), failures with their reasons, and the follow-ups."""

    def build(user: User) -> Response:
        alert = alerts.read_alert(session, alert_id=alert_id, actor=user, what="audit")
        rows = progress(session, alert_id=alert.id)
        return render_page(
            request,
            "console_progress.html",
            alert=alert,
            rows=rows,
            people=people_progress(session, alert_id=alert.id),
            modes={r.channel: settings.channel_mode(r.channel) for r in rows}
            | {ch: settings.channel_mode(ch) for ch in alert.channels},
            failures=_failures(session, alert.id),
            fanout_waiting=enqueue.waiting(session, alert_id=alert.id),
            may_follow_up=alert.state == AlertState.PUBLISHED.value and user.role in AUTHOR_ROLES,
            **_common(session, settings, user),
        )

    return _page(request, session, settings, build)


@router.get("/konsol/peringatan/{alert_id}/halaman", response_class=HTMLResponse, response_model=None)
def public_page_preview(alert_id: int, request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """The alert's public page as it will look once published (the public template), for staff only."""

    def build(user: User) -> Response:
        alert = alerts.read_alert(session, alert_id=alert_id, actor=user, what="audit")
        return HTMLResponse(composer.public_page_html(alert))

    return _page(request, session, settings, build)

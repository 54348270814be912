"""Public pages and feeds: no login, Indonesian first."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import or_, select

from broadcast.alerts import service as alerts
from broadcast.alerts.models import Alert, AlertState, CapStatus
from broadcast.alerts.rules import PUBLIC_STATES
from broadcast.api.deps import SessionDep, SettingsDep
from broadcast.db import utcnow
from broadcast.errors import NotFound
from broadcast.web.render import render_page
from channels.web import atom_feed

router = APIRouter(tags=["public"])


def _current(session: SessionDep, *, actual: bool) -> list[Alert]:
    now = utcnow()
    status_filter = Alert.status == CapStatus.ACTUAL.value if actual else Alert.status != CapStatus.ACTUAL.value
    stmt = (
        select(Alert)
        .where(
            Alert.state == AlertState.PUBLISHED.value,
            or_(Alert.expires.is_(None), Alert.expires > now),
            status_filter,
        )
        .order_by(Alert.sent.desc())
        .limit(200)
    )
    return list(session.scalars(stmt))


@router.get("/", response_class=HTMLResponse)
def home(request: Request, session: SessionDep) -> HTMLResponse:
    """Current alerts, real ones first, then exercises clearly marked."""
    current = _current(session, actual=True) + _current(session, actual=False)
    return render_page(request, "index.html", alerts=current)


@router.get("/peringatan/{identifier}", response_class=HTMLResponse)
def alert_page(identifier: str, request: Request, session: SessionDep) -> HTMLResponse:
    """The public page of one published alert.

    Raises: NotFound (unknown or not yet published).
    """
    alert = alerts.find_alert_by_identifier(session, identifier=identifier)
    if alert is None or AlertState(alert.state) not in PUBLIC_STATES:
        raise NotFound("Peringatan tidak ditemukan / alert not found", code="alert-not-found")
    followers = [a for a in alerts.list_follow_ups(session, alert_id=alert.id) if AlertState(a.state) in PUBLIC_STATES]
    original = session.get(Alert, alert.references_alert_id) if alert.references_alert_id else None
    return render_page(request, "alert.html", alert=alert, followers=followers, original=original)


@router.get("/p/{alert_id}", response_class=RedirectResponse, status_code=302)
def short_link(alert_id: int, session: SessionDep) -> RedirectResponse:
    """The short SMS link: redirects to the public page of a published alert.

    Raises: NotFound.
    """
    alert = session.get(Alert, alert_id)
    if alert is None or AlertState(alert.state) not in PUBLIC_STATES:
        raise NotFound("Peringatan tidak ditemukan / alert not found", code="alert-not-found")
    return RedirectResponse(f"/peringatan/{alert.identifier}", status_code=302)


@router.get("/cap/{identifier}.xml")
def alert_cap(identifier: str, session: SessionDep) -> Response:
    """The CAP 1.2 message of a published alert (schema-valid, or not served at all).

    Raises: NotFound.
    """
    alert = alerts.find_alert_by_identifier(session, identifier=identifier)
    if alert is None or AlertState(alert.state) not in PUBLIC_STATES:
        raise NotFound("Peringatan tidak ditemukan / alert not found", code="alert-not-found")
    return Response(
        alerts.export_cap(alert),
        media_type="application/cap+xml",
        headers={"Cache-Control": "public, max-age=60"},
    )


def _feed(session: SessionDep, settings: SettingsDep, *, actual: bool, path: str, title: str) -> Response:
    base = settings.public_base_url.rstrip("/")
    current = _current(session, actual=actual)
    data = [alerts.to_alert_data(a, public_base_url=base) for a in current]
    updated = max((a.sent for a in current if a.sent), default=None) or utcnow()
    body = atom_feed(data, feed_url=f"{base}{path}", title=title, updated=updated, site_url=f"{base}/")
    return Response(
        body,
        media_type="application/atom+xml; charset=utf-8",
        headers={"Cache-Control": "public, max-age=30"},
    )


@router.get("/feed/atom.xml")
def feed_actual(session: SessionDep, settings: SettingsDep) -> Response:
    """Atom feed of current real (Actual) alerts, the form aggregators ingest."""
    return _feed(
        session,
        settings,
        actual=True,
        path="/feed/atom.xml",
        title="Peringatan bencana aktif / Current disaster alerts",
    )


@router.get("/feed/latihan.xml")
def feed_exercise(session: SessionDep, settings: SettingsDep) -> Response:
    """A separate Atom feed of exercises and tests, so aggregators never take them for real."""
    return _feed(
        session,
        settings,
        actual=False,
        path="/feed/latihan.xml",
        title="LATIHAN/TEST: peringatan latihan / exercise and test alerts",
    )

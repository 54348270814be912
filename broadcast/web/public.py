"""Public pages and feeds: no login, Indonesian first (?lang=en for English), fast on a slow phone."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import or_, select

from broadcast.alerts import public
from broadcast.alerts import service as alerts
from broadcast.alerts.models import Alert, AlertState, CapStatus, MsgType
from broadcast.alerts.rules import PUBLIC_STATES
from broadcast.api.deps import SessionDep, SettingsDep
from broadcast.api.pages import render_page
from broadcast.cap.signing import sign_cap
from broadcast.db import utcnow
from broadcast.errors import Invalid, NotFound
from broadcast.trust.wiring import cap_keypair
from broadcast.web import maps
from broadcast.web.caching import etag_for, not_modified, validator_headers
from channels.web import atom_feed, json_alert, rss_feed
from geo import gazetteer

router = APIRouter(tags=["public"])

Lang = Annotated[Literal["id", "en"], Query(description="id (default) or en")]
Severity = Literal["Extreme", "Severe", "Moderate", "Minor", "Unknown"]
FeedStatus = Literal["Actual", "Exercise", "Test", "all"]


class UnknownArea(NotFound):
    code = "unknown-area-code"


def _in_area(alert: Alert, code: str) -> bool:
    codes = alerts.alert_codes(alert)
    return any(gazetteer.contains(code, c) or gazetteer.contains(c, code) for c in codes)


def select_alerts(
    session: SessionDep,
    *,
    statuses: tuple[str, ...] = (CapStatus.ACTUAL.value,),
    code: str | None = None,
    severity: str | None = None,
    current: bool = True,
    limit: int = 200,
    with_cancels: bool = False,
) -> list[Alert]:
    """Issued alerts, newest first, filtered: with `current`, only those the public truth calls active (plus, with
    `with_cancels`, the Cancel messages still unexpired, so feed readers learn of the cancellation)."""
    now = utcnow()
    states = [AlertState.PUBLISHED.value] if current else [s.value for s in PUBLIC_STATES]
    stmt = select(Alert).where(Alert.state.in_(states), Alert.status.in_(statuses)).order_by(Alert.sent.desc())
    if current:
        stmt = stmt.where(or_(Alert.expires.is_(None), Alert.expires > now))
    found = list(session.scalars(stmt.limit(limit * 5 if (code or severity) else limit)))
    if code:
        found = [a for a in found if _in_area(a, code)]
    if severity:
        found = [a for a in found if a.infos and a.infos[0].severity == severity]
    if current:
        found = [a for a in found if public.is_active(a, now=now) or (with_cancels and _live_cancel(a, now))]
    return found[:limit]


def _live_cancel(alert: Alert, now: datetime) -> bool:
    return alert.msg_type == MsgType.CANCEL.value and (alert.expires is None or alert.expires > now)


def truths(session: SessionDep, found: list[Alert]) -> dict[int, public.PublicState | None]:
    """The public state of each alert, by id (for listing labels)."""
    return {a.id: public.public_state(session, a) for a in found}


def _check_code(code: str | None) -> None:
    if code is not None and (not gazetteer.is_well_formed(code) or gazetteer.find_place(code) is None):
        raise UnknownArea(f"Kode wilayah '{code}' tidak dikenal / unknown area code")


def _version(found: list[Alert], *extra: object) -> tuple[str, datetime | None]:
    last = max((a.updated_at for a in found), default=None)
    return etag_for(*extra, *((a.id, a.updated_at.isoformat()) for a in found)), last


def _statuses(status: FeedStatus) -> tuple[str, ...]:
    return ("Actual", "Exercise", "Test") if status == "all" else (status,)


def _cached(request: Request, found: list[Alert], key: tuple[object, ...], build: Callable[[], Response]) -> Response:
    etag, last = _version(found, *key)
    cached = not_modified(request, etag=etag, last_modified=last)
    if cached is not None:
        return cached
    response = build()
    response.headers.update(validator_headers(etag=etag, last_modified=last))
    return response


@router.get("/", response_class=HTMLResponse)
def home(request: Request, session: SessionDep, lang: Lang = "id") -> Response:
    """Current alerts with a map, real ones first, then exercises and tests clearly marked."""
    real = select_alerts(session)
    drills = select_alerts(session, statuses=("Exercise", "Test"))
    found = real + drills
    return _cached(
        request,
        found,
        ("home", lang),
        lambda: render_page(
            request, "index.html", alerts=real, drills=drills, lang=lang, overview=maps.alerts_feature_collection(found)
        ),
    )


@router.get("/peringatan/{identifier}", response_class=HTMLResponse)
def alert_page(identifier: str, request: Request, session: SessionDep, lang: Lang = "id") -> Response:
    """The public page of one published alert, with its history of updates and cancellation.

    Raises: NotFound (unknown or not yet published).
    """
    alert = _published(session, identifier)
    truth = public.public_state(session, alert)
    followers = [a for a in alerts.list_follow_ups(session, alert_id=alert.id) if AlertState(a.state) in PUBLIC_STATES]
    original = session.get(Alert, alert.references_alert_id) if alert.references_alert_id else None
    infos = sorted(alert.infos, key=lambda i: not i.language.startswith(lang))
    return _cached(
        request,
        [alert, *followers],
        ("page", lang, truth.key if truth else None, truth.newest.id if truth else None),
        lambda: render_page(
            request,
            "alert.html",
            alert=alert,
            infos=infos,
            followers=followers,
            original=original,
            truth=truth,
            lang=lang,
        ),
    )


def _published(session: SessionDep, identifier: str) -> Alert:
    alert = alerts.find_alert_by_identifier(session, identifier=identifier)
    if alert is None or AlertState(alert.state) not in PUBLIC_STATES:
        raise NotFound("Peringatan tidak ditemukan / alert not found", code="alert-not-found")
    return alert


@router.get("/peringatan/{identifier}/area.geojson")
def alert_area(identifier: str, request: Request, session: SessionDep) -> Response:
    """The alert's target area and the kabupaten outlines around it, for the page map."""
    alert = _published(session, identifier)
    return _cached(
        request,
        [alert],
        ("area",),
        lambda: JSONResponse(maps.alert_feature_collection(alert), media_type="application/geo+json"),
    )


@router.get("/wilayah/{code}", response_class=HTMLResponse)
def area_page(code: str, request: Request, session: SessionDep, lang: Lang = "id") -> Response:
    """Alerts for one area code (current first, then past), e.g. /wilayah/33.15.

    Raises: NotFound (unknown code).
    """
    _check_code(code)
    place = gazetteer.find_place(code)
    current = select_alerts(session, statuses=("Actual", "Exercise", "Test"), code=code)
    past = [
        a
        for a in select_alerts(session, statuses=("Actual", "Exercise", "Test"), code=code, current=False, limit=50)
        if a not in current
    ]
    return _cached(
        request,
        current + past,
        ("area-page", code, lang),
        lambda: render_page(
            request,
            "area.html",
            place=place,
            code=code,
            current=current,
            past=past,
            truths=truths(session, past),
            lang=lang,
            overview=maps.alerts_feature_collection(current),
        ),
    )


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
def alert_cap(identifier: str, request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """The CAP 1.2 message of a published alert (schema-valid, or not served at all), with an enveloped XML-DSig
    signature whose certificate is at /.well-known/cap-signing.pem.

    Raises: NotFound.
    """
    alert = _published(session, identifier)
    keypair = cap_keypair(settings)

    def build() -> Response:
        body = alerts.export_cap(alert)
        return Response(sign_cap(body, keypair) if keypair else body, media_type="application/cap+xml")

    return _cached(request, [alert], ("cap", keypair is not None), build)


def _xml_doc(media_type: str) -> dict[int | str, dict[str, Any]]:
    return {
        200: {"description": "The feed", "content": {media_type: {"schema": {"type": "string"}}}},
        304: {"description": "Not modified since the ETag or date the client sent"},
    }


AreaQuery = Annotated[str | None, Query(alias="wilayah", max_length=13, description="Kemendagri code, e.g. 72.71")]
SeverityQuery = Annotated[Severity | None, Query()]


def _fixed_statuses(*statuses: str) -> Callable[[], tuple[str, ...]]:
    def fixed() -> tuple[str, ...]:
        return statuses

    return fixed


def _chosen_statuses(status: FeedStatus = "Actual") -> tuple[str, ...]:
    """`status=all` adds exercises and tests, each flagged `is_exercise_or_test`."""
    if status not in ("Actual", "Exercise", "Test", "all"):
        raise Invalid("status harus Actual, Exercise, Test atau all / bad status")
    return _statuses(status)


def _feed_route(
    name: str,
    path: str,
    *,
    kind: Literal["atom", "rss", "json"],
    title: str,
    statuses: Callable[..., tuple[str, ...]],
    summary: str,
) -> None:
    """Register one public feed: the same filters (wilayah, severity), caching and building for every format;
    only the format, the path, the title and which statuses it carries differ."""

    def endpoint(
        request: Request,
        session: SessionDep,
        settings: SettingsDep,
        wilayah: AreaQuery = None,
        severity: SeverityQuery = None,
        chosen: tuple[str, ...] = Depends(statuses),
    ) -> Response:
        _check_code(wilayah)
        found = select_alerts(session, statuses=chosen, code=wilayah, severity=severity, with_cancels=True)
        base = settings.public_base_url.rstrip("/")

        def build() -> Response:
            data = [alerts.to_alert_data(a, public_base_url=base) for a in found]
            updated = max((a.updated_at for a in found), default=None) or utcnow()
            query = f"?{request.url.query}" if request.url.query else ""
            args: dict[str, Any] = {
                "feed_url": f"{base}{path}{query}",
                "title": title,
                "updated": updated,
                "site_url": f"{base}/",
            }
            if kind == "rss":
                return Response(rss_feed(data, **args), media_type="application/rss+xml; charset=utf-8")
            if kind == "json":
                states = truths(session, found)
                return JSONResponse(
                    {
                        "title": title,
                        "updated": updated.isoformat(),
                        "alerts": [
                            json_alert(d) | public.state_json(states[a.id]) for a, d in zip(found, data, strict=True)
                        ],
                    }
                )
            return Response(atom_feed(data, **args), media_type="application/atom+xml; charset=utf-8")

        return _cached(request, found, (kind, path, wilayah, severity, chosen), build)

    endpoint.__name__ = endpoint.__qualname__ = name
    endpoint.__doc__ = summary
    if kind == "json":
        router.add_api_route(path, endpoint, methods=["GET"], name=name)
    else:
        media_type = "application/rss+xml" if kind == "rss" else "application/atom+xml"
        router.add_api_route(
            path, endpoint, methods=["GET"], name=name, response_class=Response, responses=_xml_doc(media_type)
        )


CURRENT = "Peringatan bencana aktif / Current disaster alerts"
_feed_route(
    "feed_atom",
    "/feed/atom.xml",
    kind="atom",
    title=CURRENT,
    statuses=_fixed_statuses("Actual"),
    summary="Atom feed of current real (Actual) alerts, each linking its CAP document.",
)
_feed_route(
    "feed_exercise",
    "/feed/latihan.xml",
    kind="atom",
    title="LATIHAN/TEST: peringatan latihan / exercise and test alerts",
    statuses=_fixed_statuses("Exercise", "Test"),
    summary="A separate Atom feed of exercises and tests, so aggregators never take them for real.",
)
_feed_route(
    "feed_rss",
    "/feed/rss.xml",
    kind="rss",
    title=CURRENT,
    statuses=_fixed_statuses("Actual"),
    summary="RSS 2.0 feed of current real alerts.",
)
_feed_route(
    "feed_json",
    "/api/public/alerts",
    kind="json",
    title="Peringatan bencana / disaster alerts",
    statuses=_chosen_statuses,
    summary="Current alerts as JSON; `status=all` adds exercises and tests, each flagged `is_exercise_or_test`.",
)

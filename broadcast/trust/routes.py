"""Public trust pages (/cek, hoax form, klarifikasi, /transparansi, CAP signing certificate) and the hoax console."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from broadcast.api.abuse import FormRejected, check_form_token, check_rate, form_token
from broadcast.api.deps import SessionDep, SettingsDep, find_current_user
from broadcast.api.pages import render_page, sign_in_redirect
from broadcast.api.security import client_ip
from broadcast.db import utcnow
from broadcast.errors import BroadcastError, Forbidden, NotFound, TooManyRequests
from broadcast.settings import Settings
from broadcast.trust import service, transparency, verify
from broadcast.trust.wiring import cap_keypair, reply_renderers
from broadcast.users.models import Role, User

router = APIRouter(tags=["trust"])
staff_router = APIRouter(tags=["trust (staff)"])

Lang = Annotated[Literal["id", "en"], Query(description="id (default) or en")]
# Pasted-text checks per IP per window (shared carrier IPs are common, so generous; each check costs a lookup).
CHECK_TEXTS_PER_IP = 60
# Public forms answer their refusals as pages.
FORM_LIMITED: dict[int | str, dict[str, object]] = {
    429: {
        "description": "Too many submissions from this address; the page says when to try again",
        "content": {"text/html": {}},
    },
}
OPS_ROLES = frozenset({Role.OPERATOR, Role.APPROVER, Role.ADMIN, Role.ANALYST})


def _cek_page(request: Request, settings: Settings, *, status_code: int = 200, **context: object) -> HTMLResponse:
    """The /cek page; its hoax form carries a fresh single-use token."""
    return render_page(
        request, "cek.html", status_code=status_code, hoax_token=form_token(settings, form="hoaks"), **context
    )


def _base(settings: Settings) -> str:
    return settings.public_base_url.rstrip("/")


@router.get("/cek", response_class=HTMLResponse, responses=FORM_LIMITED)
def check_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    lang: Lang = "id",
    kode: Annotated[str | None, Query(max_length=32)] = None,
) -> HTMLResponse:
    """Check a verification code (?kode=7KQ2MX), or show the form for a code or a pasted message."""
    found = None
    if kode:
        refused = _code_lookup_refused(request, settings, lang=lang, code=kode, text="")
        if refused is not None:
            return refused
        found = verify.find_by_code(
            session, code=kode, public_base_url=_base(settings), renderers=reply_renderers(settings)
        )
    return _cek_page(request, settings, lang=lang, code=kode or "", text="", found=found, check=None)


def _code_lookup_refused(
    request: Request, settings: Settings, *, lang: str, code: str, text: str
) -> HTMLResponse | None:
    """A 429 page once this address has looked up too many verification codes in the window (the code space is
    small enough to walk without a limit), else None."""
    try:
        check_rate(
            settings,
            ip=client_ip(request, settings),
            phone_hash=None,
            scope="cek-code",
            per_ip=settings.check_code_limit_per_ip,
        )
    except TooManyRequests as exc:
        page = _cek_page(
            request,
            settings,
            lang=lang,
            code=code,
            text=text,
            found=None,
            check=None,
            error=str(exc),
            status_code=429,
        )
        page.headers["Retry-After"] = str(exc.retry_after_s)
        return page
    return None


@router.post("/cek", response_class=HTMLResponse, responses=FORM_LIMITED)
def check_submit(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    kode: Annotated[str, Form(max_length=32)] = "",
    teks: Annotated[str, Form(max_length=service.MAX_HOAX_CHARS)] = "",
    lang: Annotated[Literal["id", "en"], Form()] = "id",
) -> HTMLResponse:
    """Check a code or a pasted message; a pasted text is official only when it is exactly a message we issued."""
    found, check = None, None
    renderers = reply_renderers(settings)
    if teks.strip():
        # Matching a pasted text renders every issued message once; a generous per-IP limit keeps it cheap
        # (many citizens share one carrier IP, so it is far above what one person needs).
        try:
            check_rate(
                settings, ip=client_ip(request, settings), phone_hash=None, scope="cek", per_ip=CHECK_TEXTS_PER_IP
            )
        except TooManyRequests as exc:
            return _cek_page(
                request,
                settings,
                lang=lang,
                code=kode,
                text=teks,
                found=None,
                check=None,
                error=str(exc),
                status_code=429,
            )
        check = verify.check_text(session, text=teks, public_base_url=_base(settings), renderers=renderers)
    elif kode.strip():
        refused = _code_lookup_refused(request, settings, lang=lang, code=kode, text=teks)
        if refused is not None:
            return refused
        found = verify.find_by_code(session, code=kode, public_base_url=_base(settings), renderers=renderers)
    return _cek_page(request, settings, lang=lang, code=kode, text=teks, found=found, check=check)


@router.post(
    "/lapor-hoaks",
    response_class=HTMLResponse,
    responses={
        **FORM_LIMITED,
        422: {
            "description": "The page again, saying what to fix (a missing, forged or reused form token; problem JSON "
            "when the request is not a form)",
            "content": {"text/html": {}, "application/problem+json": {}},
        },
    },
)
def hoax_submit(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    teks: Annotated[str, Form(min_length=1, max_length=service.MAX_HOAX_CHARS, pattern=r"\S")],
    lang: Annotated[Literal["id", "en"], Form()] = "id",
    token: Annotated[str, Form(max_length=80)] = "",
) -> HTMLResponse:
    """Store a suspected fake message forwarded through the web form (anonymous: nothing about the sender kept);
    each rendered form can be sent once."""
    try:
        check_form_token(settings, token, form="hoaks")
    except FormRejected as exc:
        return _cek_page(
            request, settings, lang=lang, code="", text=teks, found=None, check=None, error=str(exc), status_code=422
        )
    try:
        check_rate(settings, ip=client_ip(request, settings), phone_hash=None, scope="hoaks")
    except TooManyRequests as exc:
        return _cek_page(
            request, settings, lang=lang, code="", text=teks, found=None, check=None, error=str(exc), status_code=429
        )
    hoax = service.store_hoax(session, source="web", text=teks, language=lang)
    session.commit()
    return render_page(request, "hoaks_terima.html", lang=lang, reference=hoax.id)


@router.get("/klarifikasi", response_class=HTMLResponse)
def clarifications(request: Request, session: SessionDep, lang: Lang = "id") -> HTMLResponse:
    """Every published clarification of a circulating fake, newest first."""
    return render_page(request, "klarifikasi_list.html", lang=lang, items=service.list_clarifications(session))


@router.get("/klarifikasi/{slug}", response_class=HTMLResponse)
def clarification(slug: str, request: Request, session: SessionDep, lang: Lang = "id") -> HTMLResponse:
    """One clarification: the fake as it circulated and the agency's answer.

    Raises: NotFound.
    """
    page = service.find_clarification(session, slug=slug)
    if page is None:
        raise NotFound("Klarifikasi tidak ditemukan / clarification not found", code="clarification-not-found")
    return render_page(request, "klarifikasi.html", lang=lang, page=page)


@router.get("/transparansi", response_class=HTMLResponse)
def transparency_page(request: Request, session: SessionDep, lang: Lang = "id") -> HTMLResponse:
    """The public accountability dashboard: charts and tables from the open dataset (CC BY 4.0)."""
    return _transparency_page(request, transparency.dataset(session), lang=lang, exercise=False)


@router.get("/transparansi/latihan", response_class=HTMLResponse)
def transparency_exercise_page(request: Request, session: SessionDep, lang: Lang = "id") -> HTMLResponse:
    """The same dashboard over exercises and tests only, marked LATIHAN throughout, so every install (where only
    production may publish real alerts) shows it working."""
    return _transparency_page(request, transparency.exercise_dataset(session), lang=lang, exercise=True)


def _transparency_page(request: Request, rows: list[transparency.Row], *, lang: str, exercise: bool) -> HTMLResponse:
    return render_page(
        request,
        "transparansi.html",
        lang=lang,
        rows=rows,
        charts=transparency.charts(rows),
        licence=transparency.LICENCE,
        licence_url=transparency.LICENCE_URL,
        min_count=transparency.MIN_COUNT,
        exercise=exercise,
        data_path="/transparansi/latihan" if exercise else "/transparansi",
    )


def _csv(rows: list[transparency.Row], filename: str) -> Response:
    return Response(
        transparency.to_csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Link": f'<{transparency.LICENCE_URL}>; rel="license"',
        },
    )


CSV_DOC: dict[int | str, dict[str, object]] = {
    200: {"description": "The open dataset (CC BY 4.0)", "content": {"text/csv": {"schema": {"type": "string"}}}}
}


@router.get("/transparansi/data.csv", response_class=Response, responses=CSV_DOC)
def transparency_csv(session: SessionDep) -> Response:
    """The open dataset as CSV (CC BY 4.0)."""
    return _csv(transparency.dataset(session), "transparansi.csv")


@router.get("/transparansi/latihan/data.csv", response_class=Response, responses=CSV_DOC)
def transparency_exercise_csv(session: SessionDep) -> Response:
    """The exercise and test dataset as CSV (LATIHAN: not real events)."""
    return _csv(transparency.exercise_dataset(session), "transparansi-LATIHAN.csv")


@router.get("/transparansi/data.json")
def transparency_json(session: SessionDep, settings: SettingsDep) -> JSONResponse:
    """The open dataset as JSON, with its licence and suppression rule."""
    rows = transparency.dataset(session)
    return JSONResponse(
        transparency.to_json(rows, generated_at=utcnow(), source_url=f"{_base(settings)}/transparansi"),
        headers={"Link": f'<{transparency.LICENCE_URL}>; rel="license"'},
    )


@router.get("/transparansi/latihan/data.json")
def transparency_exercise_json(session: SessionDep, settings: SettingsDep) -> JSONResponse:
    """The exercise and test dataset as JSON (LATIHAN: not real events, `statuses` says which)."""
    rows = transparency.exercise_dataset(session)
    body = transparency.to_json(rows, generated_at=utcnow(), source_url=f"{_base(settings)}/transparansi/latihan")
    body["statuses"] = list(transparency.EXERCISE_STATUSES)
    return JSONResponse(body, headers={"Link": f'<{transparency.LICENCE_URL}>; rel="license"'})


@router.get(
    "/.well-known/cap-signing.pem",
    response_class=Response,
    responses={
        200: {
            "description": "The signing certificate (PEM)",
            "content": {"application/x-pem-file": {"schema": {"type": "string"}}},
        }
    },
)
def signing_certificate(settings: SettingsDep) -> Response:
    """The certificate our CAP signatures verify with.

    Raises: NotFound (this deployment does not sign).
    """
    pair = cap_keypair(settings)
    if pair is None:
        raise NotFound("CAP tidak ditandatangani di sini / CAP is not signed here", code="no-signing-key")
    return Response(pair.cert_pem, media_type="application/x-pem-file")


def _ops_user(
    request: Request, session: SessionDep, settings: SettingsDep, form_csrf: str | None = None
) -> User | None:
    try:
        user = find_current_user(request, session, settings, form_csrf=form_csrf)
    except BroadcastError:
        return None
    return user if user is not None and Role(user.role) in OPS_ROLES else None


@staff_router.get("/konsol/hoaks", response_class=HTMLResponse, response_model=None)
def hoax_console(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """Forwarded suspected fakes grouped by similarity, largest group first (staff only)."""
    user = _ops_user(request, session, settings)
    if user is None:
        return sign_in_redirect(request)
    return render_page(
        request,
        "hoaks_konsol.html",
        user=user,
        clusters=service.cluster_hoaxes(session),
        pending=service.pending_clarifications(session),
    )


@staff_router.post("/konsol/hoaks/klarifikasi", response_model=None)
def hoax_clarify(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    hoax_ids: Annotated[list[int], Form(min_length=1)],
    title_id: Annotated[str, Form(min_length=1, max_length=200, pattern=r"\S")],
    body_id: Annotated[str, Form(min_length=1, max_length=5000, pattern=r"\S")],
    title_en: Annotated[str, Form(max_length=200)] = "",
    body_en: Annotated[str, Form(max_length=5000)] = "",
    alert_id: Annotated[str, Form(max_length=12, pattern=r"^[0-9]*$")] = "",
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Write a clarification for a group of forwarded fakes and send it for approval: it is published, and every
    sender gets an SMS, only when a second person approves it.

    Raises: Forbidden (not signed in, or a wrong CSRF token), HoaxNotFound, InvalidHoax.
    """
    user = _ops_user(request, session, settings, form_csrf=csrf)
    if user is None:
        raise Forbidden("Masuk sebagai petugas dan kirim ulang formulir / sign in and resend the form", code="csrf")
    service.submit_clarification(
        session,
        hoax_ids=hoax_ids,
        title_id=title_id,
        body_id=body_id,
        title_en=title_en,
        body_en=body_en,
        actor=user,
        alert_id=int(alert_id) if alert_id else None,
    )
    session.commit()
    return RedirectResponse("/konsol/hoaks", status_code=303)


@staff_router.post("/konsol/hoaks/klarifikasi/{clarification_id}/setujui", response_model=None)
def hoax_clarification_approve(
    clarification_id: int,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Approve a submitted clarification (a second person): publish it and reply by SMS to every sender.

    Raises: Forbidden (not signed in, wrong CSRF token), ClarificationNotFound, RoleNotAllowed, TwoPersonRule.
    """
    user = _ops_user(request, session, settings, form_csrf=csrf)
    if user is None:
        raise Forbidden("Masuk sebagai petugas dan kirim ulang formulir / sign in and resend the form", code="csrf")
    page, _ = service.approve_clarification(
        session, clarification_id=clarification_id, approver=user, public_base_url=_base(settings)
    )
    session.commit()  # the replies go out after the route (their ReplyQueued events)
    return RedirectResponse(f"/klarifikasi/{page.slug}", status_code=303)


@staff_router.post("/konsol/hoaks/klarifikasi/{clarification_id}/tolak", response_model=None)
def hoax_clarification_reject(
    clarification_id: int,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    reason: Annotated[str, Form(max_length=1000)] = "",
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Send a submitted clarification back (a second person); nothing is published.

    Raises: Forbidden (not signed in, wrong CSRF token), ClarificationNotFound, RoleNotAllowed, TwoPersonRule.
    """
    user = _ops_user(request, session, settings, form_csrf=csrf)
    if user is None:
        raise Forbidden("Masuk sebagai petugas dan kirim ulang formulir / sign in and resend the form", code="csrf")
    service.reject_clarification(session, clarification_id=clarification_id, approver=user, reason=reason.strip())
    session.commit()
    return RedirectResponse("/konsol/hoaks", status_code=303)

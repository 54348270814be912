"""Staff pages: sign in with a form (session cookie) and sign out; the console lives in web/console.py."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from broadcast.api.deps import CSRF_COOKIE, SESSION_COOKIE, SessionDep, SettingsDep, find_current_user
from broadcast.api.pages import DEFAULT_AFTER_SIGN_IN, NEXT_MAX_LEN, render_page, safe_next
from broadcast.api.security import LoginThrottleDep, client_ip, secure_cookies, sign_in
from broadcast.errors import BroadcastError, TooManyRequests, Unauthorized, Unavailable
from broadcast.settings import Settings
from broadcast.users import service as users
from broadcast.users.security import issue_token

router = APIRouter(tags=["staff pages"])

# Login CSRF: the sign-in form carries a token that must match this cookie, so another site cannot sign a
# browser in to an account of the attacker's choosing (and then watch what the victim types into the console).
LOGIN_CSRF_COOKIE = "broadcast_login_csrf"
LOGIN_CSRF_MAX_AGE_S = 2 * 3600


def _login_page(
    request: Request,
    settings: Settings,
    *,
    status_code: int = 200,
    error: str | None = None,
    username: str = "",
    next: str = DEFAULT_AFTER_SIGN_IN,
) -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    page = render_page(
        request, "login.html", status_code=status_code, user=None, error=error, username=username, csrf=token, next=next
    )
    page.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=LOGIN_CSRF_MAX_AGE_S,
        httponly=True,
        samesite="strict",
        secure=secure_cookies(settings),
    )
    return page


@router.get("/masuk", response_class=HTMLResponse)
def login_form(
    request: Request, settings: SettingsDep, next: str = Query(default="", max_length=NEXT_MAX_LEN)
) -> HTMLResponse:
    """The sign-in form (with a fresh login CSRF token); `next` is the page to return to (same-site paths only)."""
    return _login_page(request, settings, next=safe_next(next))


@router.post(
    "/masuk",
    response_model=None,
    status_code=303,
    response_class=RedirectResponse,
    responses={
        401: {"content": {"text/html": {}}},
        403: {"content": {"text/html": {}}, "description": "login CSRF token missing or wrong: the form again"},
        429: {"content": {"text/html": {}}},
        503: {"content": {"text/html": {}}},
    },
)
async def login_submit(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    throttle: LoginThrottleDep,
    username: Annotated[str, Form(min_length=1, max_length=64)],
    password: Annotated[str, Form(min_length=1, max_length=256)],
    next: Annotated[str, Form(max_length=NEXT_MAX_LEN)] = "",
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Check the login CSRF token, then the credentials (throttled per account and per address), and set the
    session and CSRF cookies."""
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not secrets.compare_digest(csrf.encode(), expected.encode()):
        return _login_page(
            request,
            settings,
            status_code=403,
            error="Formulir kedaluwarsa atau bukan dari situs ini, coba lagi / the form expired or did not come "
            "from this site, try again",
            username=username,
            next=safe_next(next),
        )
    try:
        user = await sign_in(session, throttle, username=username, password=password, ip=client_ip(request, settings))
    except Unauthorized as exc:
        return _login_page(request, settings, status_code=401, error=str(exc), username=username, next=safe_next(next))
    except TooManyRequests as exc:
        page = _login_page(request, settings, status_code=429, error=str(exc), username=username, next=safe_next(next))
        page.headers["Retry-After"] = str(exc.retry_after_s)
        return page
    except Unavailable as exc:
        return _login_page(request, settings, status_code=503, error=str(exc), username=username)
    token = issue_token(settings.secret_key.get_secret_value(), user_id=user.id, token_version=user.token_version)
    secure = secure_cookies(settings)
    response = RedirectResponse(safe_next(next), status_code=303)
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    max_age = settings.session_ttl_minutes * 60
    response.set_cookie(SESSION_COOKIE, token, max_age=max_age, httponly=True, samesite="lax", secure=secure)
    response.set_cookie(
        CSRF_COOKIE,
        secrets.token_urlsafe(24),
        max_age=max_age,
        httponly=False,
        samesite="strict",
        secure=secure,
    )
    return response


@router.post("/keluar", response_class=RedirectResponse, status_code=303, response_model=None)
def logout(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """End the session (the form carries the CSRF token): the user's session tokens are revoked on the server,
    not only the cookie deleted."""
    expected = request.cookies.get(CSRF_COOKIE, "")
    response = RedirectResponse("/", status_code=303)
    if expected and secrets.compare_digest(csrf, expected):
        try:
            user = find_current_user(request, session, settings, form_csrf=csrf)
        except BroadcastError:
            user = None  # already expired or revoked: nothing left to end
        if user is not None:
            users.revoke_sessions(session, user=user, actor_id=user.id, reason="logout")
            session.commit()
        response.delete_cookie(SESSION_COOKIE)
        response.delete_cookie(CSRF_COOKIE)
    return response

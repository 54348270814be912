"""Staff pages: sign in with a form (session cookie) and sign out; the console lives in web/console.py."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from broadcast.api.deps import CSRF_COOKIE, SESSION_COOKIE, SessionDep, SettingsDep, find_current_user
from broadcast.api.security import LoginThrottleDep, client_ip, secure_cookies, sign_in
from broadcast.errors import BroadcastError, TooManyRequests, Unauthorized, Unavailable
from broadcast.users import service as users
from broadcast.users.security import issue_token
from broadcast.web.render import render_page

router = APIRouter(tags=["staff pages"])


@router.get("/masuk", response_class=HTMLResponse)
def login_form(request: Request) -> HTMLResponse:
    """The sign-in form."""
    return render_page(request, "login.html", user=None, error=None, username="")


@router.post(
    "/masuk",
    response_model=None,
    status_code=303,
    response_class=RedirectResponse,
    responses={
        401: {"content": {"text/html": {}}},
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
) -> Response:
    """Check the credentials (throttled per account and per address) and set the session and CSRF cookies."""
    try:
        user = await sign_in(session, throttle, username=username, password=password, ip=client_ip(request, settings))
    except Unauthorized as exc:
        return render_page(request, "login.html", status_code=401, user=None, error=str(exc), username=username)
    except TooManyRequests as exc:
        page = render_page(request, "login.html", status_code=429, user=None, error=str(exc), username=username)
        page.headers["Retry-After"] = str(exc.retry_after_s)
        return page
    except Unavailable as exc:
        return render_page(request, "login.html", status_code=503, user=None, error=str(exc), username=username)
    token = issue_token(settings.secret_key.get_secret_value(), user_id=user.id, token_version=user.token_version)
    secure = secure_cookies(settings)
    response = RedirectResponse("/konsol", status_code=303)
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

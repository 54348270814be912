"""HTML pages of every entrypoint: render one with the signed-in user and the CSRF token in context, and send a
signed-out visitor of a staff page to the sign-in form."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse

from broadcast.api.deps import CSRF_COOKIE
from templates import page_env
from templates.pagectx import MARKS, page_helpers

__all__ = ["MARKS", "render_page", "safe_next", "sign_in_redirect"]


def render_page(request: Request, name: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    """The page `name` with the common context (user, csrf, status marks, local-time and label helpers)."""
    context.setdefault("user", getattr(request.state, "user", None))
    context.setdefault("csrf", request.cookies.get(CSRF_COOKIE, ""))
    lang = context.setdefault("lang", "id")
    html = page_env().get_template(name).render(**page_helpers(lang), path=request.url.path, **context)
    return HTMLResponse(html, status_code=status_code)


DEFAULT_AFTER_SIGN_IN = "/konsol"
NEXT_MAX_LEN = 2000


def safe_next(target: str | None) -> str:
    """Where to go after signing in: `target` when it is a path on this site, else the console.

    Only same-origin relative paths pass: no scheme or host ("https://x", "//x"), no backslash (browsers read
    "/\\x" as "//x"), no control characters (browsers drop tabs and newlines, so "/<tab>/x" would become "//x").
    """
    if not target or len(target) > NEXT_MAX_LEN or not target.startswith("/") or target.startswith("//"):
        return DEFAULT_AFTER_SIGN_IN
    if "\\" in target or any(ord(c) < 32 or ord(c) == 127 for c in target):
        return DEFAULT_AFTER_SIGN_IN
    return target


def sign_in_redirect(request: Request) -> RedirectResponse:
    """Send a signed-out visitor of a staff page to the sign-in form, which brings them back to it afterwards."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/masuk?next={quote(safe_next(here), safe='')}", status_code=303)

"""Render an HTML page with the signed-in user and the CSRF token in context."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from broadcast.api.deps import CSRF_COOKIE
from channels.base import STATUS_MARKS
from templates import page_env

MARKS = {status: f"{m['id']} / {m['en']}" if m["id"] != m["en"] else m["id"] for status, m in STATUS_MARKS.items()}


def render_page(request: Request, name: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    """The page `name` with the common context (user, csrf, status marks)."""
    context.setdefault("user", getattr(request.state, "user", None))
    context.setdefault("csrf", request.cookies.get(CSRF_COOKIE, ""))
    lang = context.setdefault("lang", "id")

    def t(indonesian: str, english: str) -> str:
        return english if lang == "en" else indonesian

    html = page_env().get_template(name).render(marks=MARKS, t=t, path=request.url.path, **context)
    return HTMLResponse(html, status_code=status_code)

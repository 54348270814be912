"""Render an HTML page with the signed-in user and the CSRF token in context."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from broadcast.api.deps import CSRF_COOKIE
from templates import page_env
from templates.pagectx import MARKS, page_helpers

__all__ = ["MARKS", "render_page"]


def render_page(request: Request, name: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    """The page `name` with the common context (user, csrf, status marks, local-time and label helpers)."""
    context.setdefault("user", getattr(request.state, "user", None))
    context.setdefault("csrf", request.cookies.get(CSRF_COOKIE, ""))
    lang = context.setdefault("lang", "id")
    html = page_env().get_template(name).render(**page_helpers(lang), path=request.url.path, **context)
    return HTMLResponse(html, status_code=status_code)

"""The FastAPI application: API, public pages, staff pages."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broadcast import __version__
from broadcast.alerts.routes import areas_router, cap_router, hazard_router
from broadcast.alerts.routes import router as alerts_router
from broadcast.api import problems, security
from broadcast.api.ops import router as ops_router
from broadcast.partners.routes import router as partners_router
from broadcast.reports.routes import intake_router as report_intake_router
from broadcast.reports.routes import router as reports_router
from broadcast.settings import Settings, get_settings
from broadcast.subscribers.routes import router as subscribers_router
from broadcast.trust.routes import router as trust_router
from broadcast.trust.routes import staff_router as trust_staff_router
from broadcast.users.routes import router as users_router
from broadcast.web import pagecache
from broadcast.web.console import router as console_router
from broadcast.web.docs import router as docs_router
from broadcast.web.public import router as public_router
from broadcast.web.reports import router as report_pages_router
from broadcast.web.staff import router as staff_router
from broadcast.webhooks.routes import router as webhooks_router
from broadcast.worker import celery

STATIC = Path(__file__).resolve().parent.parent / "web" / "static"


class BodyLimit:
    """Refuse request bodies over `max_bytes` with 413, whether or not Content-Length is sent."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, overrides: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.overrides = overrides or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.overrides.get(scope.get("path", ""), self.max_bytes)
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not (declared.isascii() and declared.isdigit()) or int(declared) > max_bytes):
            await self._too_large(send, max_bytes)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > max_bytes:
                    raise _TooLarge(max_bytes)
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._too_large(send, max_bytes)

    async def _too_large(self, send: Send, max_bytes: int) -> None:
        response = problems.problem_response(
            413,
            f"Badan permintaan melebihi {max_bytes} byte / body larger than {max_bytes} bytes",
            code="payload-too-large",
        )
        await send({"type": "http.response.start", "status": 413, "headers": response.raw_headers})
        await send({"type": "http.response.body", "body": response.body})


class _TooLarge(StarletteHTTPException):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"Badan permintaan melebihi {max_bytes} byte / body larger than {max_bytes} bytes")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; tests pass their own settings."""
    settings = settings or get_settings()
    app = FastAPI(
        title="Broadcast: layanan peringatan bencana",
        version=__version__,
        docs_url=None,  # served by web/docs.py from the vendored assets
        openapi_url="/api/openapi.json",
        redoc_url=None,
        responses=problems.COMMON_RESPONSES,
    )
    app.dependency_overrides[get_settings] = lambda: settings
    app.state.settings = settings
    app.state.celery = celery  # where events committed by a request go (broadcast.api.deps.send_events)
    problems.register(app)
    # Partner report intake first: a flood spike is matched by the first route (no other path overlaps it).
    app.include_router(report_intake_router)
    app.include_router(users_router)
    app.include_router(alerts_router)
    app.include_router(cap_router)
    app.include_router(hazard_router)
    app.include_router(partners_router)
    app.include_router(subscribers_router)
    app.include_router(areas_router)
    app.include_router(public_router)
    app.include_router(trust_router)
    app.include_router(trust_staff_router)
    app.include_router(staff_router)
    app.include_router(console_router)
    app.include_router(webhooks_router)
    app.include_router(reports_router)
    app.include_router(report_pages_router)
    app.include_router(ops_router)
    app.include_router(docs_router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    # Public pages and feeds from the cache, innermost: the other middlewares still see every answer.
    pagecache.install(app, settings)
    # The public report form may carry a photo; everything else keeps the general limit.
    photo_limit = max(settings.max_body_bytes, settings.report_photo_max_bytes + 64 * 1024)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, overrides={"/lapor": photo_limit})
    security.install(app, settings)
    return app

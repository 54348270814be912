"""Security plumbing of the web app: response headers, CORS, cookie flags and throttled sign-in."""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from sqlalchemy.orm import Session
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broadcast.api.deps import SESSION_COOKIE, SettingsDep
from broadcast.audit import service as audit
from broadcast.errors import Unauthorized
from broadcast.settings import Environment, Settings
from broadcast.users import service as users
from broadcast.users.models import User
from broadcast.users.throttle import LoginThrottle, ThrottleLimits

log = logging.getLogger(__name__)

# Only our own origin: scripts, styles and maps are served from /static (Leaflet draws with SVG, no tiles).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
# Swagger UI loads its script and styles from a CDN with an inline bootstrap script.
DOCS_PREFIXES = ("/api/docs", "/docs/oauth2-redirect")
HSTS = "max-age=63072000; includeSubDomains"
# Staff pages, files and exports (reports with phone numbers, photos, subscriber lists, CSV): never kept by a
# browser or a shared cache. Any response to a request that carries credentials is treated the same way.
PRIVATE_PREFIXES = ("/pusdalops", "/konsol", "/api/v1", "/admin", "/auth", "/masuk", "/keluar", "/metrics")
NO_STORE = (b"cache-control", b"no-store")


class SecurityHeaders:
    """Adds CSP, nosniff, referrer policy, frame denial and (in production) HSTS to every response; a header the
    response already carries is kept, except Cache-Control on private responses (PRIVATE_PREFIXES, or any request
    with credentials), which is always `no-store`. Pure ASGI, one pass over the response's headers (it runs on
    every request)."""

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        headers = [
            ("content-security-policy", CSP),
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "strict-origin-when-cross-origin"),
            ("x-frame-options", "DENY"),
            ("cross-origin-opener-policy", "same-origin"),
            ("permissions-policy", "geolocation=(self), camera=(), microphone=()"),
        ]
        if hsts:
            headers.append(("strict-transport-security", HSTS))
        self.headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]
        self.docs_headers = [(name, value) for name, value in self.headers if name != b"content-security-policy"]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        extra = self.docs_headers if path.startswith(DOCS_PREFIXES) else self.headers
        private = path.startswith(PRIVATE_PREFIXES) or _has_credentials(scope)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = list(message.get("headers", ()))
                if private:
                    raw = [h for h in raw if h[0].lower() != b"cache-control"] + [NO_STORE]
                present = {name.lower() for name, _ in raw}
                raw.extend(header for header in extra if header[0] not in present)
                message = {**message, "headers": raw}
            await send(message)

        await self.app(scope, receive, with_headers)


def _has_credentials(scope: Scope) -> bool:
    """The request carries a bearer token or our session cookie (a signed-in staff member's view)."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            return True
        if name == b"cookie" and SESSION_COOKIE.encode() in value:
            return True
    return False


def install(app: FastAPI, settings: Settings) -> None:
    """Security headers always; CORS only for the configured origins (none by default: closed)."""
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=False,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )
    app.add_middleware(SecurityHeaders, hsts=settings.environment is Environment.PRODUCTION)


def secure_cookies(settings: Settings) -> bool:
    """Cookies carry the Secure flag in production and on any https deployment."""
    return settings.environment is Environment.PRODUCTION or settings.public_base_url.startswith("https://")


@lru_cache(maxsize=8)
def _redis(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)


def get_login_throttle(settings: SettingsDep) -> LoginThrottle:
    """The sign-in throttle on the deployment's Redis."""
    limits = ThrottleLimits(
        account_failures=settings.login_max_failures_per_account,
        ip_failures=settings.login_max_failures_per_ip,
        window_s=settings.login_throttle_window_s,
    )
    return LoginThrottle(_redis(settings.resolved_redis_url), limits)


LoginThrottleDep = Annotated[LoginThrottle, Depends(get_login_throttle)]


def client_ip(request: Request) -> str:
    """The caller's address as the server sees it (run uvicorn with --proxy-headers behind a proxy)."""
    return request.client.host if request.client else "unknown"


def sign_in(session: Session, throttle: LoginThrottle, *, username: str, password: str, ip: str) -> User:
    """The user with these credentials, unless the account or address is throttled; failures are counted,
    and reaching a limit is written to the audit log (the caller commits).

    Raises: TooManyRequests, Unauthorized.
    """
    throttle.check(username=username, ip=ip)
    try:
        user = users.authenticate(session, username=username, password=password)
    except Unauthorized:
        reached = throttle.failed(username=username, ip=ip)
        log.warning("failed sign-in for a username from %s", ip)
        if reached:
            known = users.find_user_by_username(session, username=username)
            audit.record(
                session,
                actor_id=None,
                action="user.login_throttled",
                subject_type="user",
                subject_id=known.id if known else None,
                after={"username": username[:64], "ip": ip, "limits": reached},
            )
            session.commit()
        raise
    throttle.succeeded(username=username)
    return user

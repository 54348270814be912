"""Security plumbing of the web app: response headers, CORS, cookie flags and throttled sign-in."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broadcast import limits
from broadcast.api.deps import SESSION_COOKIE, SettingsDep
from broadcast.audit import service as audit
from broadcast.errors import Unauthorized
from broadcast.settings import Environment, Settings
from broadcast.users import service as users
from broadcast.users.models import User
from broadcast.users.throttle import Attempt, LoginThrottle, ThrottleLimits

log = logging.getLogger(__name__)

# Only our own origin: scripts, styles and maps are served from /static (Leaflet draws with SVG, no tiles).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
# Swagger UI and ReDoc (vendored under /static) start from an inline bootstrap script and style with inline
# styles; ReDoc searches in a blob: worker. Still nothing from another origin (ReDoc's CDN logo stays out).
DOCS_PREFIXES = ("/api/docs", "/api/redoc", "/docs/oauth2-redirect")
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
# The only pages our own pages may frame: the review page shows the alert's public page as it will look.
SAME_ORIGIN_FRAMES = re.compile(r"^/konsol/peringatan/\d+/halaman$")
HSTS = "max-age=63072000; includeSubDomains"
# Staff pages, files and exports (reports with phone numbers, photos, subscriber lists, CSV): never kept by a
# browser or a shared cache. Any response to a request that carries credentials is treated the same way.
PRIVATE_PREFIXES = ("/pusdalops", "/konsol", "/api/v1", "/admin", "/auth", "/masuk", "/keluar", "/metrics")
NO_STORE = (b"cache-control", b"no-store")


class SecurityHeaders:
    """Adds CSP, nosniff, referrer policy, frame denial and (in production) HSTS to every response; a header the
    response already carries is kept, except Cache-Control on private responses (PRIVATE_PREFIXES, or any request
    with credentials), which is always `no-store`. Only SAME_ORIGIN_FRAMES may be framed, and only by our own pages.
    Pure ASGI, one pass over the response's headers (it runs on every request)."""

    def __init__(self, app: ASGIApp, *, hsts: bool, img_origins: tuple[str, ...] = ()) -> None:
        self.app = app
        csp = CSP.replace("img-src 'self' data: blob:", " ".join(("img-src 'self' data: blob:", *img_origins)))
        headers = [
            ("content-security-policy", csp),
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "strict-origin-when-cross-origin"),
            ("x-frame-options", "DENY"),
            ("cross-origin-opener-policy", "same-origin"),
            ("permissions-policy", "geolocation=(self), camera=(), microphone=()"),
        ]
        if hsts:
            headers.append(("strict-transport-security", HSTS))
        self.headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]
        self.docs_headers = [
            (name, DOCS_CSP.encode("latin-1") if name == b"content-security-policy" else value)
            for name, value in self.headers
        ]
        self.frame_headers = [
            (name, value.replace(b"frame-ancestors 'none'", b"frame-ancestors 'self'"))
            if name == b"content-security-policy"
            else (name, b"SAMEORIGIN" if name == b"x-frame-options" else value)
            for name, value in self.headers
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        if path.startswith(DOCS_PREFIXES):
            extra = self.docs_headers
        elif SAME_ORIGIN_FRAMES.match(path):
            extra = self.frame_headers
        else:
            extra = self.headers
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


class LoopbackOnlyWithPlaceholder:
    """While sessions would be signed with the published placeholder secret, a request that reached the API on a
    non-loopback address, or through a proxy (it carries X-Forwarded-For or Forwarded), is refused (503 problem),
    in every environment: anyone could forge a session there."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and (
            not _loopback_server(scope.get("server"))
            or any(name in (b"x-forwarded-for", b"forwarded") for name, _ in scope.get("headers", ()))
        ):
            from broadcast.api import problems

            response = problems.problem_response(
                503,
                "Kunci rahasia masih placeholder; tetapkan BROADCAST_SECRET_KEY sebelum membuka layanan ke jaringan / "
                "the secret key is the placeholder: set BROADCAST_SECRET_KEY before listening on a network address",
                code="placeholder-secret",
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _loopback_server(server: object) -> bool:
    """False only for a TCP listener address that is not loopback (a unix socket or the test client pass)."""
    if not isinstance(server, tuple | list) or not server:
        return True
    try:
        ip = ipaddress.ip_address(str(server[0]))
    except ValueError:
        return True
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def install(app: FastAPI, settings: Settings) -> None:
    """Security headers always; CORS only for the configured origins (none by default: closed); with the
    placeholder secret, loopback only."""
    if settings.uses_placeholder_secret:
        log.warning("BROADCAST_SECRET_KEY is the placeholder: requests on non-loopback addresses are refused")
        app.add_middleware(LoopbackOnlyWithPlaceholder)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=False,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )
    tiles = (settings.map_tile_origin,) if settings.map_tile_origin else ()
    app.add_middleware(SecurityHeaders, hsts=settings.environment is Environment.PRODUCTION, img_origins=tiles)


def secure_cookies(settings: Settings) -> bool:
    """Cookies carry the Secure flag in production and on any https deployment."""
    return settings.environment is Environment.PRODUCTION or settings.public_base_url.startswith("https://")


def get_login_throttle(settings: SettingsDep) -> LoginThrottle:
    """The sign-in throttle on the deployment's Redis (no per-process fallback: sign-in fails closed)."""
    limits_ = ThrottleLimits(
        pair_failures=settings.login_max_failures_per_account,
        ip_failures=settings.login_max_failures_per_ip,
        account_slow_after=settings.login_slow_after_failures_per_account,
        max_delay_s=settings.login_max_delay_s,
        window_s=settings.login_throttle_window_s,
    )
    return LoginThrottle(limits.redis_counters(settings.resolved_redis_url), limits_)


LoginThrottleDep = Annotated[LoginThrottle, Depends(get_login_throttle)]


def client_ip(request: Request, settings: Settings) -> str:
    """The caller's address: the connecting peer, unless the peer is a proxy listed in
    BROADCAST_FORWARDED_ALLOW_IPS; then the nearest X-Forwarded-For hop that is not such a proxy. Every limit and
    log line that names a client uses this one function (uvicorn runs with --no-proxy-headers)."""
    peer = request.client.host if request.client else "unknown"
    proxies = settings.forwarded_allow_networks
    if not proxies or not _in(peer, proxies):
        return peer
    hops = [h.strip() for v in request.headers.getlist("x-forwarded-for") for h in v.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _in(hop, proxies):
            return hop if _is_ip(hop) else peer
    return hops[0] if hops and _is_ip(hops[0]) else peer


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _in(address: str, networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in networks)


async def sign_in(session: Session, throttle: LoginThrottle, *, username: str, password: str, ip: str) -> User:
    """The user with these credentials, unless the (account, address) or the address is throttled. The attempt
    is counted before the password is checked, and waits first when the account is being guessed at from many
    places; reaching a limit is written to the audit log (the caller commits).

    Raises: TooManyRequests, Unauthorized, Unavailable (the throttle's store is down: fail closed).
    """
    attempt = await run_in_threadpool(throttle.begin, username=username, ip=ip)
    if attempt.delay_s:
        await asyncio.sleep(attempt.delay_s)
    return await run_in_threadpool(_check, session, throttle, attempt, password)


def _check(session: Session, throttle: LoginThrottle, attempt: Attempt, password: str) -> User:
    try:
        user = users.authenticate(session, username=attempt.username, password=password)
    except Unauthorized:
        reached = throttle.failed(attempt)
        log.warning("failed sign-in for a username from %s", attempt.ip)
        if reached:
            known = users.find_user_by_username(session, username=attempt.username)
            audit.record(
                session,
                actor_id=None,
                action="user.login_throttled",
                subject_type="user",
                subject_id=known.id if known else None,
                after={"username": attempt.username[:64], "ip": attempt.ip, "limits": reached},
            )
            session.commit()
        raise
    throttle.succeeded(attempt)
    return user

"""What each route asks of its caller, read from its dependencies (for the authorisation matrix and docs)."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from broadcast.api.deps import current_user

ANY_SIGNED_IN = frozenset({"*"})


def _walk(dependant: Dependant) -> tuple[frozenset[str] | None, bool]:
    roles: frozenset[str] | None = None
    signed_in = False
    for dep in dependant.dependencies:
        allowed = getattr(dep.call, "allowed_roles", None)
        if allowed is not None:
            roles = frozenset(allowed) if roles is None else roles & frozenset(allowed)
        if dep.call is current_user:
            signed_in = True
        sub_roles, sub_signed = _walk(dep)
        if sub_roles is not None:
            roles = sub_roles if roles is None else roles & sub_roles
        signed_in = signed_in or sub_signed
    return roles, signed_in


def required_roles(route: BaseRoute) -> frozenset[str] | None:
    """The roles a route lets through: a set of role names, ANY_SIGNED_IN, or None when it asks for no login
    through a dependency (public, signed webhooks, pages that check the session themselves)."""
    if not isinstance(route, APIRoute):
        return None
    roles, signed_in = _walk(route.dependant)
    if roles is not None:
        return roles
    return ANY_SIGNED_IN if signed_in else None


def iter_endpoints(app: Starlette) -> Iterator[tuple[str, str, BaseRoute]]:
    """Every (method, path, route) the app answers, HEAD aside, across FastAPI's flat and lazily included
    router layouts; mounts (static files) are not endpoints."""
    for route in app.routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            for ctx in contexts():
                yield from _methods(ctx.path or ctx.original_route.path, ctx.original_route)
        elif getattr(route, "methods", None):
            yield from _methods(route.path, route)  # type: ignore[attr-defined]


def _methods(path: str, route: BaseRoute) -> Iterator[tuple[str, str, BaseRoute]]:
    for method in sorted(getattr(route, "methods", None) or ()):
        if method != "HEAD":
            yield method, path, route

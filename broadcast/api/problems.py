"""One mapping from domain errors to RFC 9457 problem responses; no tracebacks ever reach a user."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from broadcast.errors import (
    BroadcastError,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    TooLarge,
    TooManyRequests,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
)

log = logging.getLogger(__name__)


class Problem(BaseModel):
    """An RFC 9457 problem: every error the API answers has this shape."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str


def _doc(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": Problem.model_json_schema()}},
    }


# Documented on every operation: any route may answer these (auth, validation, size limits, overload).
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _doc("Malformed request"),
    401: _doc("Not signed in, or the token expired"),
    403: _doc("Signed in but not allowed (role, jurisdiction, CSRF)"),
    404: _doc("No such object"),
    409: _doc("Conflicts with the object's state"),
    413: _doc("Body too large"),
    415: _doc("Unsupported media type"),
    422: _doc("Invalid data"),
    429: _doc("Too many requests (Retry-After)"),
    500: _doc("Internal error (logged; no details are given)"),
    503: _doc("A dependency is unavailable"),
}

STATUS: dict[type[BroadcastError], int] = {
    NotFound: 404,
    Conflict: 409,
    Forbidden: 403,
    Unauthorized: 401,
    Invalid: 422,
    TooLarge: 413,
    UnsupportedMediaType: 415,
    Unavailable: 503,
    TooManyRequests: 429,
}
TITLES = {
    400: "Permintaan tidak valid / Bad request",
    401: "Perlu masuk / Authentication required",
    403: "Tidak diizinkan / Forbidden",
    404: "Tidak ditemukan / Not found",
    405: "Metode tidak diizinkan / Method not allowed",
    409: "Konflik / Conflict",
    413: "Permintaan terlalu besar / Payload too large",
    415: "Jenis konten tidak didukung / Unsupported media type",
    422: "Data tidak valid / Invalid data",
    429: "Terlalu banyak permintaan / Too many requests",
    500: "Kesalahan server / Internal error",
    503: "Layanan tidak tersedia / Service unavailable",
}


def problem_response(
    status: int,
    detail: str,
    *,
    code: str,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"/problems/{code}",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if extra:
        body |= extra
    return JSONResponse(body, status_code=status, media_type="application/problem+json", headers=headers)


def status_for(exc: BroadcastError) -> int:
    return next((STATUS[c] for c in type(exc).__mro__ if c in STATUS), 400)


async def _domain(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BroadcastError)
    status = status_for(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if isinstance(exc, TooManyRequests):
        headers = {"Retry-After": str(exc.retry_after_s)}
    refused = getattr(exc, "refused", None)
    extra = {"refused": list(refused)} if refused else None
    return problem_response(status, str(exc), code=exc.code, extra=extra, headers=headers)


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
    if any(e["type"] == "json_invalid" for e in errors):
        return problem_response(
            400,
            "Badan permintaan bukan JSON yang valid / malformed JSON body",
            code="malformed-json",
            extra={"errors": jsonable_encoder(errors)},
        )
    summary = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors[:5])
    return problem_response(
        422,
        f"Data tidak valid / invalid data: {summary}",
        code="validation",
        extra={"errors": jsonable_encoder(errors)},
    )


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else TITLES.get(exc.status_code, "Error")
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"Alamat tidak ditemukan / no such route: {request.url.path}"
    elif exc.status_code == 405 and detail == "Method Not Allowed":
        detail = f"Metode {request.method} tidak diizinkan di {request.url.path} / method not allowed"
    return problem_response(
        exc.status_code, detail, code=f"http-{exc.status_code}", headers=getattr(exc, "headers", None)
    )


MAX_DB_INTEGER = 2**31 - 1  # ids are INTEGER columns on PostgreSQL


async def _out_of_range(request: Request, exc: Exception) -> JSONResponse:
    # The database could not take a number: SQLite binds at most 64 bits, PostgreSQL INTEGER ids 32. An id in
    # the path that large names nothing (404); any other value out of range is invalid data (422).
    log.info("value out of range on %s %s: %s", request.method, request.url.path, type(exc).__name__)
    huge_id = any(
        str(v).lstrip("-").isascii() and str(v).lstrip("-").isdigit() and abs(int(v)) > MAX_DB_INTEGER
        for v in request.path_params.values()
    )
    if huge_id:
        return problem_response(404, "Tidak ada objek dengan nomor itu / no object with that id", code="not-found")
    return problem_response(422, "Nilai di luar jangkauan / a value is out of range", code="value-out-of-range")


async def _client_gone(request: Request, exc: Exception) -> JSONResponse:
    # The client hung up while sending its body: nothing to answer, and not a server fault.
    log.info("client disconnected during %s %s", request.method, request.url.path)
    return problem_response(400, "Klien memutus sambungan / client disconnected", code="client-disconnected")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    # This answer leaves through Starlette's outermost error middleware, past the security headers middleware.
    return problem_response(
        500,
        "Terjadi kesalahan di server; sudah dicatat / internal error, logged",
        code="internal",
        headers={
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
        },
    )


def register(app: FastAPI) -> None:
    """Install the single error mapping on `app`."""
    app.add_exception_handler(BroadcastError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(OverflowError, _out_of_range)
    app.add_exception_handler(DataError, _out_of_range)
    app.add_exception_handler(Exception, _unexpected)

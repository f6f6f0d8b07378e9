"""Errors as JSON: {"errors": [{"row": N|null, "field": ...|null, "message": ...}]}, never a trace."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from worker.registry.fingerprint import FingerprintKeyError
from worker.registry.records import BadInput, NotFound
from worker.registry.roster import RosterError

log = structlog.get_logger("worker.api")


class ApiError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.field, self.headers = status, message, field, headers


def error_body(*errors: dict[str, Any]) -> dict[str, Any]:
    return {"errors": [{"row": e.get("row"), "field": e.get("field"), "message": e["message"]} for e in errors]}


def _json(status: int, *errors: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(*errors), status_code=status, headers=headers)


def _field_of(loc: tuple[Any, ...]) -> str:
    # ("body", "expires_on") -> "expires_on"; ("query", "limit") -> "limit"
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or ".".join(str(p) for p in loc)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _json(exc.status, {"field": exc.field, "message": exc.message}, headers=exc.headers)

    @app.exception_handler(RosterError)
    async def roster_error(_: Request, exc: RosterError) -> JSONResponse:
        body = error_body(*({"row": e.row or None, "field": e.column, "message": e.reason} for e in exc.errors))
        # The first MAX_LISTED_ERRORS problems are listed; the counts cover every one of them.
        body["total"] = exc.total
        body["by_reason"] = [{"field": column, "message": reason, "count": n} for column, reason, n in exc.by_reason()]
        return JSONResponse(body, status_code=422)

    @app.exception_handler(FingerprintKeyError)
    async def misconfigured(request: Request, exc: FingerprintKeyError) -> JSONResponse:
        log.error("api.misconfigured", path=request.url.path, error=str(exc))
        return _json(503, {"message": "the server's configuration is incomplete; its log says what to fix"})

    @app.exception_handler(DataError)
    async def data_error(request: Request, exc: DataError) -> JSONResponse:
        # Input that slipped past validation and that the database cannot store (PostgreSQL
        # refuses NUL in text): the caller's input, so 422, never a 500. The statement's
        # parameters are hidden by the engine (hide_parameters), so the log holds no personal data.
        log.warning("api.rejected_by_database", path=request.url.path, error=type(exc.orig).__name__)
        return _json(422, {"message": "the input holds characters or values that cannot be stored"})

    @app.exception_handler(NotFound)
    async def not_found(_: Request, exc: NotFound) -> JSONResponse:
        return _json(404, {"message": "not found"})

    @app.exception_handler(BadInput)
    async def bad_input(_: Request, exc: BadInput) -> JSONResponse:
        return _json(422, {"message": str(exc)})

    @app.exception_handler(RequestValidationError)
    async def validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _json(422, *({"field": _field_of(tuple(e.get("loc", ()))), "message": e.get("msg", "invalid")}
                           for e in exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _json(exc.status_code, {"message": str(exc.detail)}, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("api.unexpected_error", path=request.url.path, error=type(exc).__name__, exc_info=exc)
        return _json(500, {"message": "internal error"})

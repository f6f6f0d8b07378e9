"""The HTTP app served by `permit-worker serve`: the HR API (/v1), Twilio webhooks, /healthz."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text

from worker.api.auth import RequestRateLimiter, authenticated_team
from worker.api.errors import install_error_handlers
from worker.api.holders import holders_router
from worker.api.limits import BodySizeLimit
from worker.runtime import Runtime
from worker.webhooks import webhook_router

DESCRIPTION = """HR teams register the holders of Shanghai residence permits they employ and see where
each stands. Authenticate with the team's token: `Authorization: Bearer <token>`
(`permit-worker teams create` prints it once; `permit-worker teams rotate-token` replaces it).
Errors are JSON: `{"errors": [{"row": N, "field": ..., "message": ...}]}`."""


def create_app(runtime: Runtime) -> FastAPI:
    s = runtime.settings
    app = FastAPI(title="permit-worker", version="0.1.0", description=DESCRIPTION,
                  docs_url=None, redoc_url=None, openapi_url="/openapi.json")
    install_error_handlers(app)
    limiter = RequestRateLimiter(s.api_rate_per_minute, s.api_burst)
    app.include_router(holders_router(runtime, authenticated_team(runtime, limiter)))
    app.include_router(webhook_router(runtime))
    app.add_middleware(BodySizeLimit, body_bytes=s.api_max_body_bytes, upload_bytes=s.api_max_upload_bytes,
                       upload_paths=("/v1/holders/import",))

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        try:
            with runtime.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # report, never raise: a probe wants a status code
            return JSONResponse({"status": "error", "database": type(exc).__name__}, status_code=503)
        return JSONResponse({"status": "ok", "database": "ok"})

    return app

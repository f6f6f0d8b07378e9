"""The HTTP app served by `permit-worker serve`: Twilio webhooks and a health check."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text

from worker.runtime import Runtime
from worker.webhooks import webhook_router


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(title="permit-worker", version="0.1.0", docs_url=None, redoc_url=None)
    app.include_router(webhook_router(runtime))

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        try:
            with runtime.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # report, never raise: a probe wants a status code
            return JSONResponse({"status": "error", "database": type(exc).__name__}, status_code=503)
        return JSONResponse({"status": "ok", "database": "ok"})

    return app

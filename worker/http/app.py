"""The HTTP app served by `permit-worker serve`: the HR API (/v1), Twilio webhooks, /healthz and
/metrics. The last two read the database only, so every replica answers the same."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from notifiers.registry import webhook_routers
from worker.delivery.inbound import Inbox
from worker.http.api import activity, holders
from worker.http.api.auth import RequestRateLimiter
from worker.http.api.errors import install_error_handlers
from worker.http.api.limits import AccessLog, BodySizeLimit, RejectControlCharacters
from worker.http.docs.page import install_docs
from worker.http.web import install_web
from worker.http.web.preview import PURGE_EVERY_SECONDS, UploadStore
from worker.ops.heartbeat import age_seconds, freshest_dispatcher_heartbeat
from worker.ops.metrics import alive_workers, metrics_registry, scan_status
from worker.ops.runtime import Runtime
from worker.store.db import schema_is_current, unit_of_work
from worker.store.models import utcnow

log = structlog.get_logger("worker.app")

DESCRIPTION = """HR teams register the holders of Shanghai residence permits they employ and see where
each stands. Authenticate with the team's token: `Authorization: Bearer <token>`
(`permit-worker teams create` prints it once; `permit-worker teams rotate-token` replaces it).
Errors are JSON: `{"errors": [{"row": N, "field": ..., "message": ...}]}`."""


async def _purge_uploads(store: UploadStore, every: float = PURGE_EVERY_SECONDS) -> None:
    """Forgotten unconfirmed uploads leave the disk within PURGE_EVERY_SECONDS of expiring, not
    only when somebody next uploads."""
    while True:
        try:
            await asyncio.to_thread(store.purge)
        except Exception:  # a disk hiccup must not stop the timer
            log.exception("web.upload_purge_failed")
        await asyncio.sleep(every)


def create_app(runtime: Runtime) -> FastAPI:
    s = runtime.settings
    stores: list[UploadStore] = []

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        timers = [asyncio.create_task(_purge_uploads(store)) for store in stores]
        # What start-up built (modules, ORM metadata, policy, calendar, templates) lives as long
        # as the process: out of the collector's sight, a full collection no longer walks it, and
        # a request that triggers one is not held up by it (measured: a 100k-holder team's summary
        # every fifth request 140 ms instead of 80; benchmarks/README.md, "HR reads").
        gc.freeze()
        yield
        for timer in timers:
            timer.cancel()

    app = FastAPI(title="permit-worker", version="0.1.0", description=DESCRIPTION,
                  docs_url=None, redoc_url=None, openapi_url="/openapi.json", lifespan=lifespan)
    install_error_handlers(app)
    # What the routes' dependencies resolve per request (worker/http/deps.py, api/auth.py).
    app.state.runtime = runtime
    app.state.api_limiter = RequestRateLimiter(s.api_rate_per_minute, s.api_burst)
    app.include_router(holders.router)
    app.include_router(activity.router)
    inbox = Inbox(runtime.factory, s.max_attempts, policy=runtime.policy)
    for router in webhook_routers(inbox, s.environ, s.public_url):  # each provider's receipts and replies
        app.include_router(router)
    app.add_middleware(BodySizeLimit, body_bytes=s.api_max_body_bytes, upload_bytes=s.api_max_upload_bytes,
                       upload_paths=("/v1/holders/import",))
    app.add_middleware(RejectControlCharacters, skip_prefixes=("/web",))  # /web answers with its own page
    app.add_middleware(AccessLog)  # outermost: every request is logged, rejected ones too

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        # 503 only when the database cannot be used: that is what makes this replica useless.
        # A late scan or a dead dispatcher is reported (and alerted on via /metrics) but keeps
        # 200, or a probe would restart API pods that cannot fix either.
        try:
            with runtime.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # report, never raise: a probe wants a status code
            # The exception's class only: its text can name hosts, and /healthz is unauthenticated.
            return JSONResponse({"status": "error", "database": type(exc).__name__,
                                 "reason": f"database unreachable ({type(exc).__name__})"}, status_code=503)
        now = utcnow()
        today = now.astimezone(s.tz).date()
        try:
            with unit_of_work(runtime.factory) as session:
                scans = scan_status(session, today)
                heartbeat = freshest_dispatcher_heartbeat(session)
                alive = alive_workers(session, now)
        except Exception as exc:  # reachable, but not usable (e.g. schema missing)
            return JSONResponse({"status": "error", "database": type(exc).__name__,
                                 "reason": f"database query failed ({type(exc).__name__})"}, status_code=503)
        age = age_seconds(heartbeat, now)
        body: dict[str, Any] = {
            "status": "ok",
            "database": "ok",
            "today": today.isoformat(),
            "last_scan_date": scans.last_finished_date.isoformat() if scans.last_finished_date else None,
            "scan_finished_today": scans.finished_today,
            "dispatcher_heartbeat_age_seconds": None if age is None else round(age, 3),
            "dispatchers_alive": alive.get("all", 0) + alive.get("dispatcher", 0),
        }
        return JSONResponse(body)

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> JSONResponse:
        """Ready to serve: the database answers, its schema is the code's (a pod started before
        the migration finished is not ready), and the policy loads. /healthz is "alive"."""
        try:
            current = schema_is_current(runtime.engine)
        except Exception as exc:  # the class only: its text can name hosts, and this is unauthenticated
            return JSONResponse({"status": "not_ready", "reason": f"database unreachable ({type(exc).__name__})"},
                                status_code=503)
        if not current:
            return JSONResponse({"status": "not_ready", "reason": "schema not current: run permit-worker db upgrade"},
                                status_code=503)
        # The policy was loaded when the app was built (a file that does not load stops start-up
        # with one line), so a running app names the one it serves.
        return JSONResponse({"status": "ready", "policy": runtime.policy.name})

    # Per app, not prometheus_client's global registry: only the database's numbers.
    registry = metrics_registry(runtime.factory, s.tz)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    install_docs(app)  # / -> /web/, and /docs rendered from the OpenAPI document
    # The HR pages under /web (after the middleware: it extends the upload limit).
    stores.append(install_web(app, runtime))
    app.state.upload_store = stores[0]
    return app

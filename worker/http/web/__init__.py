"""Server-rendered pages for HR under /web: sign in (a named account, or a team token), see who must act,
import the roster with a preview, confirm renewals, export. Jinja2 and plain forms, no build step.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from starlette.staticfiles import StaticFiles

from worker.http.api.limits import BodySizeLimit
from worker.http.web import routes, routes_accounts, routes_admin, routes_holder, routes_team, routes_upload
from worker.http.web.pages import Pages
from worker.http.web.preview import UploadStore
from worker.http.web.render import STATIC
from worker.http.web.routes_upload import UPLOAD_PATH
from worker.ops.runtime import Runtime

__all__ = ["install_web", "web_router"]


def web_router() -> APIRouter:
    router = APIRouter()  # each module's router carries the /web prefix itself
    router.include_router(routes_accounts.router)
    router.include_router(routes.router)
    router.include_router(routes_holder.router)
    router.include_router(routes_upload.router)
    router.include_router(routes_team.router)
    router.include_router(routes_admin.router)
    router.include_router(routes.fallback)  # last: it matches every other /web path
    return router


def install_web(app: FastAPI, runtime: Runtime, upload_dir: Path | None = None) -> UploadStore:
    """Mount the pages and their static files on the app (call after its middleware is added).
    Returns the store of uploads awaiting confirmation, which the app purges on a timer."""
    store = UploadStore(upload_dir)
    app.state.web_pages = Pages(runtime, store)  # what the routes' WebPages dependency resolves to
    app.mount("/web/static", StaticFiles(directory=STATIC), name="web-static")
    app.include_router(web_router())
    # Roster uploads are files: they get the upload size limit (PERMIT_API_MAX_UPLOAD_BYTES), as
    # the API's import does, instead of the small limit for form and JSON bodies.
    for middleware in app.user_middleware:
        paths: tuple[str, ...] = tuple(middleware.kwargs.get("upload_paths") or ())  # type: ignore[arg-type]
        if middleware.cls is BodySizeLimit and UPLOAD_PATH not in paths:
            middleware.kwargs["upload_paths"] = (*paths, UPLOAD_PATH)
    return store

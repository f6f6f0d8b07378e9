"""Rendering pages, and turning every failure into a page: never JSON, never a stack trace.

`WebRoute` wraps each /web handler. Sign-in problems redirect to the sign-in page, a bad CSRF
token is a 403 page, an unknown holder a 404 page, and anything unexpected is logged and shown
as a short apology. Every page also gets the headers that keep it out of frames, caches and
other sites' scripts.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import structlog
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from worker.http.api.limits import request_has_control
from worker.http.web import i18n
from worker.http.web.session import (
    LANG_COOKIE,
    CsrfError,
    Forbidden,
    SignInRequired,
    WebSession,
)
from worker.http.web.views import national_phone
from worker.registry.records import NotFound

log = structlog.get_logger("worker.web")

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
SECURITY_HEADERS = {
    # Only our own CSS and script; inline script is refused, so injected markup cannot run.
    "Content-Security-Policy": ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",  # pages show personal data: not for shared caches or back buttons
}

_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                   trim_blocks=True, lstrip_blocks=True)


def lang_of(request: Request) -> str:
    lang = request.cookies.get(LANG_COOKIE)
    return lang if lang in i18n.LANGS else i18n.DEFAULT_LANG


def render(request: Request, lang: str, name: str, status: int = 200, ws: WebSession | None = None,
           **context: Any) -> HTMLResponse:
    def t(key: str, **values: Any) -> str:
        return i18n.translate(lang, key, **values)

    def fmt_date(value: date | None) -> str:
        return value.isoformat() if value else "—"

    def local_time(value: datetime) -> str:
        """A moment as HR reads it: in the deployment's time zone, to the minute."""
        runtime = getattr(request.app.state, "runtime", None)
        zone = runtime.settings.tz if runtime is not None else ZoneInfo("Asia/Shanghai")
        return value.astimezone(zone).strftime("%Y-%m-%d %H:%M")

    html = _env.get_template(name).render(
        request=request, lang=lang, t=t, ws=ws, path=request.url.path,
        stage_label=lambda s: i18n.word(lang, i18n.STAGES, s),
        reasons_text=lambda rs: ("; " if lang == "en" else "、").join(i18n.word(lang, i18n.REASONS, r) for r in rs),
        word=lambda w: i18n.word(lang, i18n.WORDS, w),
        column_label=lambda c: i18n.column_label(lang, c),
        roster_error=lambda r: i18n.roster_error(lang, r),
        status_reason=lambda r: i18n.status_reason(lang, r),
        deadline_label=lambda k: i18n.word(lang, i18n.DEADLINES, k),
        phone=national_phone, fmt_date=fmt_date, local_time=local_time, urlencode=urlencode,
        flashes=ws.pop_flash() if ws else [], csrf=ws.csrf if ws else "", **context)
    return HTMLResponse(html, status_code=status)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)  # after a POST: the browser follows with a GET


def error_page(request: Request, status: int, ws: WebSession | None = None) -> HTMLResponse:
    key = f"err.{status}" if f"err.{status}" in i18n.TEXT else "err.400"
    return render(request, lang_of(request), "error.html", status=status, ws=ws, message_key=key, status_code=status)


class WebRoute(APIRoute):
    """An APIRoute whose failures become pages, and whose session cookie is written back."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                if request_has_control(request.scope):  # the API's rule, as a page
                    raise StarletteHTTPException(400)
                response = await original(request)
            except SignInRequired:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                response = redirect("/web/login?" + urlencode({"next": target}) if request.method == "GET"
                                    else "/web/login")
            except CsrfError as exc:
                log.info("web.csrf_rejected", path=request.url.path, reason=str(exc))
                response = error_page(request, 403)
            except Forbidden as exc:
                log.info("web.role_refused", path=request.url.path, needs=str(exc))
                response = render(request, lang_of(request), "error.html", status=403, message_key="err.role",
                                  status_code=403)
            except NotFound:
                response = error_page(request, 404)
            except RequestValidationError:
                response = error_page(request, 400)
            except StarletteHTTPException as exc:
                response = error_page(request, exc.status_code if exc.status_code in (400, 403, 404) else 400)
            except DataError:  # input the database cannot store: the user's input, not our failure
                response = error_page(request, 400)
            except Exception as exc:  # a page, not a trace: the details go to the log
                log.error("web.unexpected_error", path=request.url.path, error=type(exc).__name__, exc_info=exc)
                response = error_page(request, 500)
            ws = request.state.web_session if hasattr(request.state, "web_session") else None
            if ws is not None:  # the app's session codec (install_web puts its Pages on app.state)
                request.app.state.web_pages.codec.save(request, response, ws)
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return handler

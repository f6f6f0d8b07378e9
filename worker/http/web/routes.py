"""Language, overview and downloads (sign-in is in routes_accounts.py)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from worker.http.web.export import csv_chunks, template_csv, template_xlsx
from worker.http.web.pages import WebPages
from worker.http.web.render import WebRoute, lang_of, redirect, render
from worker.http.web.session import LANG_COOKIE
from worker.http.web.views import overview
from worker.planning.team_rows import Evaluator, stream_rows
from worker.store.db import unit_of_work

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def local(target: str | None) -> str:
    """Only a path inside /web may be a redirect target: no open redirect to another site."""
    if not target:
        return "/web/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/web") or target.startswith("//"):
        return "/web/"
    return target


def _disposition(filename: str) -> dict[str, str]:
    # RFC 5987 filename* carries the Chinese name; the ASCII one is for old clients.
    ascii_name = filename.encode("ascii", "ignore").decode() or "download"
    return {"Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"}


def _download(body: bytes, media_type: str, filename: str) -> Response:
    return Response(body, media_type=media_type, headers=_disposition(filename))


router = APIRouter(prefix="/web", route_class=WebRoute, include_in_schema=False)


@router.get("", include_in_schema=False)
def web_root(pages: WebPages, ) -> Response:
    return redirect("/web/")

@router.get("/lang/{lang}")
def set_language(pages: WebPages, lang: str, next: str | None = None) -> Response:
    # A preference, not an action on data: a plain link is fine (and works without forms).
    response = redirect(local(next))
    if lang in ("zh-CN", "en"):
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, path="/web", samesite="lax")
    return response

@router.get("/")
def overview_page(request: Request, pages: WebPages) -> Response:
    ws, team = pages.team(request)
    with unit_of_work(pages.runtime.factory) as session:
        data = overview(session, team.id, pages.runtime, pages.now())
    return pages.page(request, "overview.html", ws, team, data=data)

@router.get("/export.csv")
def export(request: Request, pages: WebPages) -> Response:
    """The team's registry, streamed: the first rows leave while the rest are still being read,
    and memory stays flat for a team of 100k holders."""
    _, team = pages.team(request)
    now, lang, runtime = pages.now(), lang_of(request), pages.runtime

    def body() -> Iterator[bytes]:
        with unit_of_work(runtime.factory) as session:
            yield from csv_chunks(stream_rows(session, team.id), Evaluator(runtime.policy, runtime.settings.tz, now),
                                  lang)

    day = now.astimezone(runtime.settings.tz).date().isoformat()
    name = f"{team.slug}-居住证-{day}.csv" if lang != "en" else f"{team.slug}-permits-{day}.csv"
    return StreamingResponse(body(), media_type="text/csv; charset=utf-8", headers=_disposition(name))

@router.get("/template.xlsx")
def template_workbook(request: Request, pages: WebPages) -> Response:
    pages.team(request)
    return _download(template_xlsx(), XLSX, "居住证花名册模板.xlsx")

@router.get("/template.csv")
def template_text(request: Request, pages: WebPages) -> Response:
    pages.team(request)
    return _download(template_csv(), "text/csv; charset=utf-8", "居住证花名册模板.csv")




# Included last: any other /web path is a friendly 404 page, not the API's JSON.
fallback = APIRouter(prefix="/web", route_class=WebRoute, include_in_schema=False)


@fallback.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
def not_found(request: Request, rest: str) -> Response:
    return render(request, lang_of(request), "error.html", status=404, message_key="err.404", status_code=404)

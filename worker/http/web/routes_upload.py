"""Roster upload: choose a file, see the preview, confirm (or cancel). See `preview` for why
nothing is written before the confirmation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, Response, UploadFile

from worker.http.web.i18n import translate
from worker.http.web.pages import Pages, TeamInfo, WebPages
from worker.http.web.preview import build_preview, commit_upload
from worker.http.web.render import WebRoute, lang_of, redirect
from worker.http.web.session import WebSession
from worker.registry import records as registry
from worker.registry.roster import RosterError

UPLOAD_PATH = "/web/upload"
SHOWN = 200  # rows listed per group on the preview page; the counts cover the rest
_Csrf = Annotated[str, Form(max_length=100)]


router = APIRouter(prefix="/web", route_class=WebRoute, include_in_schema=False)


def form(pages: Pages, request: Request, ws: WebSession, team: TeamInfo, status: int = 200,
         error: str | None = None) -> Response:
    # The limit lets the page refuse an oversized file before sending it.
    return pages.page(request, "upload.html", ws, team, status=status, error=error,
                      max_bytes=pages.runtime.settings.api_max_upload_bytes)

@router.get("/upload")
def upload_form(request: Request, pages: WebPages) -> Response:
    ws, team = pages.team_as(request, "editor")
    return form(pages, request, ws, team)

@router.post("/upload")
def upload(request: Request, pages: WebPages, file: Annotated[UploadFile | None, File()] = None,
           csrf: _Csrf = "", full_roster: Annotated[str, Form(max_length=10)] = "") -> Response:
    ws, team = pages.posted(request, csrf)
    data = file.file.read() if file is not None else b""
    if file is None or not file.filename or not data:
        return form(pages, request, ws, team, status=422, error=translate(lang_of(request), "up.no_file"))
    filename = file.filename.replace("\\", "/").rsplit("/", 1)[-1][:200]
    preview = build_preview(pages.runtime, team.id, ws.sid, filename, file.content_type, data,
                            full_roster=full_roster == "yes")
    pages.store.save(preview, data, file.content_type)
    return redirect(f"/web/upload/{preview.id}")

@router.get("/upload/{upload_id}")
def preview_page(request: Request, pages: WebPages, upload_id: str) -> Response:
    ws, team = pages.team(request)
    found = pages.store.load(upload_id, team.id, ws.sid)
    if found is None:  # expired, another team's, another session's, or made up: all look alike
        return form(pages, request, ws, team, status=404,
                          error=translate(lang_of(request), "pv.gone"))
    return pages.page(request, "preview.html", ws, team, p=found[0], shown=SHOWN)

@router.post("/upload/{upload_id}/confirm")
def confirm(request: Request, pages: WebPages, upload_id: str, csrf: _Csrf = "",
            confirm_leavers: Annotated[str, Form(max_length=10)] = "") -> Response:
    ws, team = pages.posted(request, csrf)
    lang = lang_of(request)
    found = pages.store.load(upload_id, team.id, ws.sid)
    if found is None:
        return form(pages, request, ws, team, status=404, error=translate(lang, "pv.gone"))
    preview, data, content_type = found
    if not preview.can_confirm:
        return redirect(f"/web/upload/{upload_id}")
    if preview.leavers and confirm_leavers != "yes":  # deleting people needs its own tick
        ws.add_flash("error", translate(lang, "pv.leavers_tick"))
        return redirect(f"/web/upload/{upload_id}")
    try:
        report, deleted = commit_upload(pages.runtime, team.id, preview.filename, content_type, data,
                                        preview.allow_earlier_expiry, [e["external_id"] for e in preview.leavers],
                                        team.actor)
    except (RosterError, registry.BadInput):
        # The registry changed since the preview (e.g. a holder was edited): preview again.
        return rebuild(pages, ws, team, upload_id, preview.filename, content_type, data, preview.allow_earlier_expiry,
                       preview.full_roster)
    pages.store.discard(upload_id)
    ws.add_flash("ok", translate(lang, "flash.imported", new=report.created, updated=report.updated,
                                 unchanged=report.unchanged))
    if deleted:
        ws.add_flash("ok", translate(lang, "flash.leavers_deleted", n=deleted))
    return redirect("/web/")

@router.post("/upload/{upload_id}/allow-earlier")
def allow_earlier(request: Request, pages: WebPages, upload_id: str, csrf: _Csrf = "",
                  confirm_earlier: Annotated[str, Form(max_length=10)] = "") -> Response:
    """HR ticked "these rows correct a mistyped expiry": preview again with the override."""
    ws, team = pages.posted(request, csrf)
    found = pages.store.load(upload_id, team.id, ws.sid)
    if found is None:
        return form(pages, request, ws, team, status=404, error=translate(lang_of(request), "pv.gone"))
    preview, data, content_type = found
    if confirm_earlier != "yes":
        return redirect(f"/web/upload/{upload_id}")
    return rebuild(pages, ws, team, upload_id, preview.filename, content_type, data, True, preview.full_roster)

def rebuild(pages: Pages, ws: WebSession, team: TeamInfo, upload_id: str, filename: str, content_type: str | None,
            data: bytes, allow_earlier_expiry: bool, full_roster: bool = False) -> Response:
    rebuilt = build_preview(pages.runtime, team.id, ws.sid, filename, content_type, data, allow_earlier_expiry,
                            full_roster)
    pages.store.discard(upload_id)
    pages.store.save(rebuilt, data, content_type)
    return redirect(f"/web/upload/{rebuilt.id}")

@router.post("/upload/{upload_id}/cancel")
def cancel(request: Request, pages: WebPages, upload_id: str, csrf: _Csrf = "") -> Response:
    ws, team = pages.posted(request, csrf)
    if pages.store.load(upload_id, team.id, ws.sid) is not None:
        pages.store.discard(upload_id)
    return redirect("/web/upload")

"""/v1 routes: a team's holders, their notifications, imports, renewals, summary and export.

Every query is scoped to the authenticated team: another team's holder is a 404.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Query, Response, UploadFile
from sqlalchemy import select
from sqlalchemy.orm import Session

from schedules.stages import STAGES
from worker.http.api.auth import CurrentTeam, TeamRef, WriteTeam
from worker.http.api.convert import holder_out, notifications_of, roster_row
from worker.http.api.errors import ApiError
from worker.http.api.schemas import (
    EnqueuedOut,
    ExpiringSoon,
    FieldChangeOut,
    HolderCreate,
    HolderExport,
    HolderOut,
    HolderPage,
    HolderUpdate,
    HolderWritten,
    HrEventOut,
    ImportResult,
    NotificationOut,
    PauseIn,
    RenewalIn,
    RowChangeOut,
    Summary,
)
from worker.http.deps import AppRuntime
from worker.ops.runtime import Runtime
from worker.planning.evaluation import holder_today
from worker.planning.explain import explain
from worker.planning.outbox import EnqueuedTouch
from worker.planning.stage_counts import expiring_within, stage_counts
from worker.planning.team_rows import Evaluator, page_ids
from worker.registry import records as registry
from worker.registry import service
from worker.registry.roster_xlsx import parse_upload
from worker.store.db import unit_of_work
from worker.store.models import Holder, HrEvent, Team

_AllowEarlier = Annotated[bool, Query(description="let rows move an expiry earlier than the one on file "
                                                  "(to correct a mistyped date); without it that is a 422")]
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or invalid bearer token"},
    403: {"description": "a read token asked to change something"}, 404: {"description": "no such holder"},
    422: {"description": "invalid input: {\"errors\": [{\"row\", \"field\", \"message\"}]}"},
    429: {"description": "rate limited; see Retry-After"},
}


router = APIRouter(prefix="/v1", responses=ERRORS)

def load(session: Session, ref: TeamRef) -> Team:
    team = session.get(Team, ref.id)
    if team is None:  # deleted since the token was checked
        raise ApiError(401, "invalid bearer token")
    return team

def written(holder: Holder, enqueued: list[EnqueuedTouch], runtime: Runtime) -> HolderWritten:
    mine = [EnqueuedOut(stage=e.stage, touch_day=e.touch_day, channel=e.channel)
            for e in enqueued if e.holder_id == holder.id]
    return HolderWritten(**holder_out(holder, runtime).model_dump(), enqueued=mine)

@router.post("/holders", status_code=201, response_model=HolderWritten, summary="Register a holder")
def create_holder(body: HolderCreate, ref: WriteTeam, runtime: AppRuntime) -> HolderWritten:
    with runtime.unit(ref.actor) as uow:
        team = load(uow.session, ref)
        exists = uow.session.scalar(select(Holder.id).where(Holder.team_id == team.id,
                                                            Holder.external_id == body.external_id))
        if exists is not None:
            raise ApiError(409, f"holder {body.external_id!r} already exists", field="external_id")
        row = roster_row(body.external_id, body.model_dump(exclude_unset=True, exclude={"external_id"}), None)
        holder = service.save_holder(uow, team, row, runtime.settings.fingerprint_key)
        answer = written(holder, uow.enqueued, runtime)
        uow.commit()
        return answer

@router.get("/holders/{external_id}", response_model=HolderOut, summary="Read a holder")
def read_holder(external_id: str, ref: CurrentTeam, runtime: AppRuntime) -> HolderOut:
    with unit_of_work(runtime.factory) as session:
        return holder_out(registry.get_holder(session, load(session, ref), external_id), runtime)

@router.patch("/holders/{external_id}", response_model=HolderWritten, summary="Update a holder")
def update_holder(external_id: str, body: HolderUpdate, ref: WriteTeam, runtime: AppRuntime,
                  allow_earlier_expiry: _AllowEarlier = False) -> HolderWritten:
    with runtime.unit(ref.actor) as uow:
        team = load(uow.session, ref)
        holder = registry.get_holder(uow.session, team, external_id)
        row = roster_row(external_id, body.model_dump(exclude_unset=True), holder)
        holder = service.save_holder(uow, team, row, runtime.settings.fingerprint_key,
                                     allow_earlier_expiry=allow_earlier_expiry)
        answer = written(holder, uow.enqueued, runtime)
        uow.commit()
        return answer

@router.delete("/holders/{external_id}", status_code=204, response_class=Response, summary="Erase a holder")
def delete_holder(external_id: str, ref: WriteTeam, runtime: AppRuntime) -> Response:
    service.erase_holder(runtime.factory, runtime.engine, ref.id, external_id, ref.actor)
    return Response(status_code=204)

@router.get("/holders", response_model=HolderPage, summary="List holders")
def list_holders(ref: CurrentTeam, runtime: AppRuntime,
                 stage: Annotated[str | None, Query(description=f"one of {', '.join(STAGES)}")] = None,
                 expires_before: date | None = None,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                 offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> HolderPage:
    if stage is not None and stage not in STAGES:
        raise ApiError(422, f"stage must be one of {', '.join(STAGES)}", field="stage")
    now = datetime.now(UTC)
    with unit_of_work(runtime.factory) as session:
        # Read through SQL: a page and a count, never the whole team as objects (100k holders).
        before = Holder.expires_on < expires_before if expires_before is not None else None
        total, ids = page_ids(session, ref.id, Evaluator(runtime.policy, runtime.settings.tz, now), stage=stage,
                              where=before, offset=offset, limit=limit)
        by_id = {h.id: h for h in session.scalars(select(Holder).where(Holder.id.in_(ids)))} if ids else {}
        page = [holder_out(by_id[i], runtime, now) for i in ids if i in by_id]
    next_offset = offset + limit if offset + limit < total else None
    return HolderPage(items=page, total=total, limit=limit, offset=offset, next_offset=next_offset)

@router.post("/holders/import", response_model=ImportResult, summary="Import a roster (CSV or XLSX)")
def import_holders(file: Annotated[UploadFile, File(description="CSV or XLSX roster")],
                   ref: WriteTeam, runtime: AppRuntime, dry_run: bool = False,
                   allow_earlier_expiry: _AllowEarlier = False) -> ImportResult:
    rows = parse_upload(file.filename, file.content_type, file.file.read())  # RosterError -> 422
    with runtime.unit(ref.actor) as uow:
        summary = service.preview_rows(uow, load(uow.session, ref), rows, runtime.settings.fingerprint_key,
                                       allow_earlier_expiry=allow_earlier_expiry)
        enqueued = uow.enqueued_count
        if not dry_run:
            uow.commit()
    return ImportResult(
        dry_run=dry_run, rows=len(rows), created=summary.created, updated=summary.updated,
        unchanged=summary.unchanged, renewed=summary.renewed, enqueued=enqueued,
        changes=[RowChangeOut(row=c.row, external_id=c.external_id, renewed=c.renewed,
                              loses_auto_renewal=list(c.loses_auto_renewal),
                              changes=[FieldChangeOut(field=f.field, old=f.old, new=f.new) for f in c.changes])
                 for c in summary.changes],
        losing_auto_renewal=[c.external_id for c in summary.changes if c.loses_auto_renewal])

@router.post("/holders/{external_id}/renewal", response_model=HolderWritten, summary="Confirm a renewal")
def confirm_renewal(external_id: str, body: RenewalIn, ref: WriteTeam, runtime: AppRuntime) -> HolderWritten:
    with runtime.unit(ref.actor) as uow:
        holder = service.confirm_renewal(uow, load(uow.session, ref), external_id, body.expires_on)
        uow.handle_events()
        answer = written(holder, uow.enqueued, runtime)
        uow.commit()
        return answer

@router.post("/holders/{external_id}/pause", response_model=HolderWritten, summary="Pause a holder's reminders")
def pause_holder(external_id: str, body: PauseIn, ref: WriteTeam, runtime: AppRuntime) -> HolderWritten:
    """Nothing is sent to the holder up to and including `until`; HR still sees them. Reminders
    due meanwhile wait; at the end the latest due touch goes out, never a backlog."""
    with runtime.unit(ref.actor) as uow:
        holder = service.pause_holder(uow, load(uow.session, ref), external_id, body.until, body.reason)
        answer = written(holder, [], runtime)
        uow.commit()
        return answer


@router.delete("/holders/{external_id}/pause", response_model=HolderWritten, summary="Resume a holder's reminders")
def resume_holder(external_id: str, ref: WriteTeam, runtime: AppRuntime) -> HolderWritten:
    with runtime.unit(ref.actor) as uow:
        holder = service.resume_holder(uow, load(uow.session, ref), external_id)
        uow.handle_events()
        answer = written(holder, uow.enqueued, runtime)
        uow.commit()
        return answer


@router.get("/holders/{external_id}/notifications", response_model=list[NotificationOut],
            summary="A holder's notifications and their delivery status")
def holder_notifications(external_id: str, ref: CurrentTeam, runtime: AppRuntime) -> list[NotificationOut]:
    with unit_of_work(runtime.factory) as session:
        return notifications_of(session, registry.get_holder(session, load(session, ref), external_id))

@router.get("/holders/{external_id}/export", response_model=HolderExport,
            summary="Everything held on one holder")
def export_holder(external_id: str, ref: CurrentTeam, runtime: AppRuntime) -> HolderExport:
    with unit_of_work(runtime.factory) as session:
        holder = registry.get_holder(session, load(session, ref), external_id)
        events = session.scalars(select(HrEvent).where(HrEvent.holder_id == holder.id).order_by(HrEvent.id))
        return HolderExport(
            holder=holder_out(holder, runtime), address_fingerprint=holder.address_fingerprint,
            notifications=notifications_of(session, holder),
            hr_events=[HrEventOut(kind=e.kind, detail=e.detail, created_at=e.created_at,
                                  reported_at=e.reported_at) for e in events])

@router.get("/holders/{external_id}/explain", summary="Stage, deadlines, accumulated years, points risks, "
            "planned reminders")
def explain_holder(external_id: str, ref: CurrentTeam, runtime: AppRuntime,
                   today: date | None = None) -> dict[str, Any]:
    with unit_of_work(runtime.factory) as session:
        holder = registry.get_holder(session, load(session, ref), external_id)
        day = today or holder_today(holder, datetime.now(UTC), runtime.settings.tz)
        return explain(session, holder, day, runtime.policy)

@router.get("/summary", response_model=Summary, summary="Counts by stage and who expires in 30 days")
def summary(ref: CurrentTeam, runtime: AppRuntime) -> Response:
    now = datetime.now(UTC)
    today = now.astimezone(runtime.settings.tz).date()
    counts: Counter[str] = Counter({s: 0 for s in STAGES})
    with unit_of_work(runtime.factory) as session:
        counts.update(stage_counts(session, ref.id, runtime.policy, runtime.settings.tz, now))
        soon = expiring_within(session, ref.id, runtime.policy, runtime.settings.tz, now)
    # A 100k-holder team has thousands expiring within 30 days: the rows are our own typed values,
    # so they are built without re-validation and the JSON written once by pydantic (FastAPI's
    # response_model path would convert and validate every item twice more).
    answer = Summary.model_construct(
        today=today, holders=sum(counts.values()), by_stage=dict(counts),
        expiring_next_30_days=[ExpiringSoon.model_construct(external_id=e, name=n, expires_on=x, days_left=d,
                                                            stage=st) for e, n, x, d, st in soon])
    return Response(answer.model_dump_json(), media_type="application/json")

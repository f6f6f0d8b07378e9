"""/v1/audit: the team's audit trail, newest first, a page at a time (read or write token)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query

from worker.http.api.auth import CurrentTeam
from worker.http.api.errors import ApiError
from worker.http.deps import AppRuntime
from worker.registry import audit
from worker.store.db import unit_of_work

router = APIRouter(prefix="/v1")


@router.get("/audit", summary="The team's audit trail: who changed what, when")
def audit_trail(ref: CurrentTeam, runtime: AppRuntime, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                before: Annotated[str | None, Query(max_length=20, description="`next_before` of the previous page")]
                = None) -> dict[str, Any]:
    """`{"entries": [{"at", "actor", "action", "holder", "changes"}], "next_before"}`: pass
    `next_before` as `before` for the next (older) page; null on the last page."""
    cursor = None
    if before is not None:
        if not re.fullmatch(r"[0-9]{1,18}", before):
            raise ApiError(422, "before must be the next_before of a previous page", field="before")
        cursor = int(before)
    with unit_of_work(runtime.factory) as session:
        found = audit.entries(session, ref.id, limit=limit + 1, before=cursor)
    page = found[:limit]
    return {"entries": [e.as_json() for e in page],
            "next_before": str(page[-1].id) if len(found) > limit else None}

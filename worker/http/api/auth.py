"""Bearer-token authentication, token scopes and a per-team request rate limit.

A token maps to its team through its SHA-256 hash; an unknown or missing token is 401. A `read`
token may read everything of its team and change nothing (403 on any change: `WriteTeam`).
Every query below is scoped to the authenticated team, so another team's holder is simply not
found (404), exactly as if it did not exist.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from worker.http.api.errors import ApiError
from worker.http.deps import AppRuntime
from worker.registry.audit import token_actor
from worker.registry.tokens import find_token
from worker.store.db import unit_of_work


@dataclass(frozen=True)
class TeamRef:
    id: int
    slug: str
    scope: str = "write"
    actor: str = "system"  # "token NAME": who the audit trail names


class RequestRateLimiter:
    """Token bucket per team: `per_minute` requests a minute, bursts up to `burst`."""

    def __init__(self, per_minute: float, burst: int) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self._state: dict[int, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, team_id: int, now: float | None = None) -> float:
        """0 if the request may go ahead, else seconds until it may."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._state.get(team_id, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._state[team_id] = (tokens - 1.0, now)
                return 0.0
            self._state[team_id] = (tokens, now)
            return (1.0 - tokens) / self.rate


def authenticated_team(request: Request, runtime: AppRuntime) -> TeamRef:
    """The bearer token's team (401 if none), within the app's per-team rate limit (429)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    with unit_of_work(runtime.factory) as session:
        row = find_token(session, token.strip())
        ref = TeamRef(row.team.id, row.team.slug, row.scope, token_actor(row.name)) if row else None
    if ref is None:
        raise ApiError(401, "invalid bearer token", headers={"WWW-Authenticate": "Bearer"})
    limiter: RequestRateLimiter = request.app.state.api_limiter
    wait = limiter.check(ref.id)
    if wait > 0:
        raise ApiError(429, "too many requests", headers={"Retry-After": str(math.ceil(wait))})
    return ref


CurrentTeam = Annotated[TeamRef, Depends(authenticated_team)]


def writing_team(ref: CurrentTeam) -> TeamRef:
    """The team, for a route that changes something: a read token gets 403."""
    if ref.scope != "write":
        raise ApiError(403, "this token is read-only: use a write token to change anything")
    return ref


WriteTeam = Annotated[TeamRef, Depends(writing_team)]

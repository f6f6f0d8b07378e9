"""Worker heartbeats: each daemon keeps one `worker_heartbeats` row fresh while it runs.

/healthz and /metrics read these rows, so any API replica can tell whether *some* dispatcher is
alive without talking to the workers. A row is upserted at start, after every dispatch run
(stamping last_dispatch_at) and every HEARTBEAT_SECONDS from a thread of its own (so a long scan
or a slow provider does not make a live worker look dead), and deleted on a clean stop. A killed
worker leaves its row behind; its age is the signal, and rows a day old are pruned at the next
start of any worker.

Run as `python -m worker.ops.heartbeat` it is a container health check: exit 0 if a worker on this
host has a fresh heartbeat, 1 if not.
"""

from __future__ import annotations

import socket
import sys
import threading
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from worker.planning.outbox import insert_dialect
from worker.store.db import rows_changed, unit_of_work
from worker.store.models import WorkerHeartbeat, utcnow

log = structlog.get_logger("worker.heartbeat")

# Well under the 30 s the operations guide promises, so one slow write does not look like a gap.
HEARTBEAT_SECONDS = 15.0
# How old a heartbeat may be before the worker counts as gone (health check, "alive" gauges).
FRESH_SECONDS = 90.0
# Rows of workers that died without a clean stop; old enough that no live worker has one.
PRUNE_AFTER = timedelta(days=1)
# Roles whose heartbeat says "messages are being sent".
DISPATCHING_ROLES = ("all", "dispatcher")


def beat(factory: sessionmaker[Session], worker_id: str, role: str, started_at: datetime, *,
         now: datetime | None = None, dispatched: bool = False, starting: bool = False) -> None:
    """Upsert this worker's row. `starting` resets started_at and last_dispatch_at: a restarted
    pod reuses its hostname:pid, and must not inherit its predecessor's last dispatch."""
    now = now or utcnow()
    values: dict[str, Any] = {"worker_id": worker_id, "role": role, "started_at": started_at,
                              "heartbeat_at": now, "last_dispatch_at": now if dispatched else None}
    # What an existing row gets: always the heartbeat; the rest only when this call knows it,
    # so a periodic beat never clears last_dispatch_at.
    update: dict[str, Any] = {"heartbeat_at": now, "role": role}
    if dispatched:
        update["last_dispatch_at"] = now
    if starting:
        update["started_at"] = started_at
        update["last_dispatch_at"] = values["last_dispatch_at"]
    with unit_of_work(factory) as session:
        stmt = insert_dialect(session)(WorkerHeartbeat).values(**values)
        session.execute(stmt.on_conflict_do_update(index_elements=["worker_id"], set_=update))


def remove(factory: sessionmaker[Session], worker_id: str) -> None:
    with unit_of_work(factory) as session:
        session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.worker_id == worker_id))


def prune(factory: sessionmaker[Session], now: datetime | None = None) -> int:
    """Delete rows of workers that stopped beating a day ago: killed, not stopped cleanly."""
    cutoff = (now or utcnow()) - PRUNE_AFTER
    with unit_of_work(factory) as session:
        return rows_changed(session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.heartbeat_at < cutoff)))


def freshest_dispatcher_heartbeat(session: Session) -> datetime | None:
    """The newest heartbeat of any worker that dispatches: one live dispatcher is enough."""
    return session.scalar(
        select(func.max(WorkerHeartbeat.heartbeat_at)).where(WorkerHeartbeat.role.in_(DISPATCHING_ROLES))
    )


def age_seconds(at: datetime | None, now: datetime) -> float | None:
    # Clamped: clock skew between replicas must not show a negative age.
    return None if at is None else max(0.0, (now - at).total_seconds())


class Heartbeat:
    """One worker's heartbeat: a start beat, a background thread, and removal on stop.

    Every write is best effort: a database blip must not stop the worker, only age its row.
    """

    def __init__(self, factory: sessionmaker[Session], worker_id: str, role: str,
                 interval: float = HEARTBEAT_SECONDS) -> None:
        self.factory = factory
        self.worker_id = worker_id
        self.role = role
        self.interval = interval
        self.started_at = utcnow()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _write(self, *, dispatched: bool = False, starting: bool = False) -> bool:
        try:
            beat(self.factory, self.worker_id, self.role, self.started_at, dispatched=dispatched, starting=starting)
            return True
        except Exception as exc:
            log.warning("heartbeat.failed", worker_id=self.worker_id, error=f"{type(exc).__name__}: {exc}")
            return False

    def start(self) -> None:
        try:
            prune(self.factory)
        except Exception as exc:
            log.warning("heartbeat.prune_failed", error=f"{type(exc).__name__}: {exc}")
        self._write(starting=True)
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._write()

    def dispatched(self) -> None:
        """A dispatch run finished: stamp it (and the heartbeat with it)."""
        self._write(dispatched=True)

    def stop(self) -> None:
        """Stop beating, then delete the row: in that order, or a last beat could re-insert it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 5)
        try:
            remove(self.factory, self.worker_id)
        except Exception as exc:
            log.warning("heartbeat.remove_failed", worker_id=self.worker_id, error=f"{type(exc).__name__}: {exc}")


def check_local(factory: sessionmaker[Session], hostname: str | None = None, now: datetime | None = None) -> bool:
    """True if a worker on this host (worker ids are hostname:pid) beat within FRESH_SECONDS."""
    host = hostname or socket.gethostname()
    since = (now or utcnow()) - timedelta(seconds=FRESH_SECONDS)
    with unit_of_work(factory) as session:
        found = session.scalar(
            select(func.count()).select_from(WorkerHeartbeat)
            .where(WorkerHeartbeat.worker_id.startswith(f"{host}:", autoescape=True),
                   WorkerHeartbeat.heartbeat_at >= since)
        )
    return bool(found)


def main() -> int:
    """Container health check for the worker roles, which serve no HTTP."""
    from worker.ops.settings import Settings
    from worker.store.db import make_engine, session_factory

    engine = make_engine(Settings().database_url)
    try:
        ok = check_local(session_factory(engine))
    except Exception as exc:
        print(f"heartbeat check failed: {type(exc).__name__}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    if not ok:
        print(f"no fresh heartbeat for {socket.gethostname()}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
